//! Placement checked against libmemcached's own ketama vectors
//! (libmemcached `test/fixtures/ketama.hpp`, BSD licence: key, md5 key hash, the
//! continuum point chosen, and the server), for the weighted pool
//! "10.0.1.1:11211 600, ... 10.0.1.8:11211 100" used by its `memcached_ketama_compat`
//! test. A subset of the 99 cases is enough to pin down hashing, point names (port
//! 11211 left out), the weighted point counts, and the search.

use super::*;

fn weighted_pool() -> Vec<Server> {
    [600, 300, 200, 350, 1000, 800, 950, 100]
        .iter()
        .enumerate()
        .map(|(i, &w)| Server {
            host: format!("10.0.1.{}", i + 1),
            port: 11211,
            weight: w,
        })
        .collect()
}

const CASES: &[(&str, u32, u32, &str)] = &[
    (r"SVa_]_V41)", 443691461, 445379617, "10.0.1.7"),
    (r"*/Z;?V(.\8", 1422915503, 1428303028, "10.0.1.1"),
    (r"30C1*Z*S/_", 1473165754, 1480075959, "10.0.1.2"),
    (r"ERR:EC58G>", 2148406511, 2168579133, "10.0.1.7"),
    (r"1I=cTMNTKF", 2882686667, 2885206587, "10.0.1.5"),
    (r"]VG<`I*Z8)", 1103544263, 1104827657, "10.0.1.5"),
    (r"UUTC`-V159", 3716288206, 3727224240, "10.0.1.5"),
    (r"@7RU6C6T+Z", 3862737685, 3871917949, "10.0.1.5"),
    (r"/XLN0@+36;", 1623269830, 1627683651, "10.0.1.1"),
    (r"4(`X;\V.^c", 373546328, 383925769, "10.0.1.1"),
    (r"726bW=9*a4", 4213440020, 4213950705, "10.0.1.7"),
    (r"\`)<B)UE,c", 951096736, 955226069, "10.0.1.1"),
    (r"P1[Ma3=K1/", 1989324036, 1994028240, "10.0.1.8"),
    (r"C89I.-V?cT", 1604239957, 1606398093, "10.0.1.8"),
    (r"D[HE+cFXDK", 2117036136, 2117124014, "10.0.1.3"),
    (r"P1L?NAB[)K", 2129972569, 2132542634, "10.0.1.1"),
    (r"cDT0)Z5P6,", 176485284, 178675413, "10.0.1.5"),
    (r"\39DKW^)N_", 3548879868, 3550704865, "10.0.1.3"),
    (r"EM75N0+[X1", 1558531507, 1559308507, "10.0.1.4"),
    (r"(,>E`)FT\4", 580747448, 581063326, "10.0.1.2"),
    (r"6,cEI`F_P>", 3972869246, 3974773167, "10.0.1.6"),
    (r"8*6a;Sc*X+", 4223431086, 4230156966, "10.0.1.2"),
    (r"UNHVP..^8H", 977096483, 977319837, "10.0.1.4"),
    (r"[>RZHG97Q9", 71954686, 72034069, "10.0.1.6"),
    (r"N-)88>[O`,", 50404102, 51792557, "10.0.1.5"),
    (r"0OZH^9BKM[", 3682518606, 3686781297, "10.0.1.8"),
    (r"CTR74,J+N.", 137446045, 146633907, "10.0.1.8"),
    (r"4*=.SPR[AV", 3928582722, 3928853792, "10.0.1.1"),
    (r"[1ZXONX2]a", 4108881567, 4109865744, "10.0.1.4"),
    (r"VD6D0]ba_\", 3842502950, 3842588691, "10.0.1.1"),
];

#[test]
fn md5_key_hash_matches_libmemcached() {
    for &(key, hash1, _, _) in CASES {
        assert_eq!(md5_hash(key.as_bytes()), hash1, "key {key}");
    }
}

#[test]
fn weighted_placement_matches_libmemcached_vectors() {
    let pool = weighted_pool();
    let c = Continuum::new(&pool, Mode::Weighted);
    for &(key, hash1, point, server) in CASES {
        let (value, index) = c.point_for_hash(hash1);
        assert_eq!(value, point, "continuum point for {key}");
        assert_eq!(pool[index].host, server, "server for {key}");
        assert_eq!(c.server_for(key.as_bytes()), index);
    }
}

#[test]
fn hash_past_last_point_wraps_to_first() {
    // libmemcached's own boundary case: "VDEAAAAA" hashes to 0xfffcd1b5, past the
    // last point, and must land on the server of continuum[0].
    let pool = weighted_pool();
    let c = Continuum::new(&pool, Mode::Weighted);
    assert_eq!(md5_hash(b"VDEAAAAA"), 0xfffc_d1b5);
    assert_eq!(c.server_for(b"VDEAAAAA"), c.points[0].index as usize);
    assert!(c.points.last().map(|p| p.value).unwrap_or(0) < 0xfffc_d1b5);
}

#[test]
fn point_counts_per_mode() {
    let two: Vec<Server> = (0..2)
        .map(|i| Server {
            host: "127.0.0.1".into(),
            port: 11311 + i,
            weight: 1,
        })
        .collect();
    assert_eq!(Continuum::new(&two, Mode::Weighted).len(), 320);
    assert_eq!(Continuum::new(&two, Mode::Plain).len(), 200);
    // Weighted pool (total weight 4300): floor(w / 4300 * 40 * 8) * 4 points each.
    let expect: u32 = [600u32, 300, 200, 350, 1000, 800, 950, 100]
        .iter()
        .map(|&w| ((w as f32 / 4300.0 * 160.0 / 4.0 * 8.0 + 1e-10).floor() as u32) * 4)
        .sum();
    assert_eq!(
        Continuum::new(&weighted_pool(), Mode::Weighted).len() as u32,
        expect
    );
}

#[test]
fn single_server_takes_every_key() {
    let one = vec![Server {
        host: "127.0.0.1".into(),
        port: 1,
        weight: 1,
    }];
    let c = Continuum::new(&one, Mode::Weighted);
    assert_eq!(c.server_for(b"anything"), 0);
}

/// Equal weights, non-default ports and a default-port host, as placed by Debian's
/// libmemcached 1.1.4 (`memcached_generate_hash`, servers added in this order).
fn local_pool() -> Vec<Server> {
    vec![
        Server {
            host: "127.0.0.1".into(),
            port: 11311,
            weight: 1,
        },
        Server {
            host: "127.0.0.1".into(),
            port: 11312,
            weight: 1,
        },
        Server {
            host: "localhost".into(),
            port: 11211,
            weight: 1,
        },
    ]
}

#[test]
fn equal_weights_match_libmemcached_1_1() {
    let weighted: &[(&str, usize)] = &[
        ("mcb:0", 2),
        ("mcb:1", 2),
        ("mcb:2", 1),
        ("mcb:3", 1),
        ("mcb:4", 1),
        ("mcb:5", 2),
        ("mcb:6", 2),
        ("mcb:7", 1),
        ("mcb:42", 0),
        ("mcb:99999", 2),
        ("foo", 2),
        ("bar", 2),
    ];
    let plain: &[(&str, usize)] = &[
        ("mcb:0", 0),
        ("mcb:1", 2),
        ("mcb:2", 0),
        ("mcb:3", 2),
        ("mcb:4", 1),
        ("mcb:5", 1),
        ("mcb:6", 2),
        ("mcb:7", 2),
        ("mcb:42", 2),
        ("mcb:99999", 2),
        ("foo", 0),
        ("bar", 1),
    ];
    let w = Continuum::new(&local_pool(), Mode::Weighted);
    let p = Continuum::new(&local_pool(), Mode::Plain);
    for &(k, s) in weighted {
        assert_eq!(w.server_for(k.as_bytes()), s, "weighted {k}");
    }
    for &(k, s) in plain {
        assert_eq!(p.server_for(k.as_bytes()), s, "plain {k}");
    }
}
