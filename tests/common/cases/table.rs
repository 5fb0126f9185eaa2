//! Parsing a case table (format: the docstring of scripts/record-cases.py).

use super::super::notation::{parse_pieces, unescape, Piece};

/// How "is the connection still open" is asked after a case's last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `version\r\n` answered by `VERSION ...`
    Text,
    /// same, and `CLIENT_ERROR unauthenticated\r\n` counts as an answer (-Y servers)
    TextAuth,
    /// binary Noop (0x0a) answered by a 0x81 0x0a header with status 0
    BinaryNoop,
    /// binary Version (0x0b) answered by a 0x81 0x0b header with status 0
    BinaryVersion,
}

impl Probe {
    fn parse(s: &str) -> Result<Probe, String> {
        Ok(match s {
            "text" => Probe::Text,
            "text-auth" => Probe::TextAuth,
            "binary-noop" => Probe::BinaryNoop,
            "binary-version" => Probe::BinaryVersion,
            _ => return Err(format!("unknown probe {s:?}")),
        })
    }
}

/// The table's header: what every case's server and connection get.
#[derive(Debug)]
pub struct Header {
    /// Server arguments after the recorder's SERVER_ARGS (`$TMP` not substituted yet).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// (path, content) with `$TMP` not substituted yet: the content is escaped text.
    pub files: Vec<(String, String)>,
    pub setup: Vec<String>,
    pub probe: Probe,
    /// CAS values are written as variables.
    pub cas: bool,
}

#[derive(Debug)]
pub struct Step {
    pub send: Vec<Piece>,
    pub expect: Vec<Piece>,
    /// What memcached-rs knowingly sends instead (`ours`), used unless the server
    /// under test is the reference.
    pub ours: Option<Vec<Piece>>,
}

#[derive(Debug)]
pub struct Case {
    pub name: String,
    /// Line of `case` in the table (1-based), for messages.
    pub line: usize,
    pub args: Vec<String>,
    pub probe: Probe,
    pub mask: Vec<glob::Pattern>,
    pub keep: Vec<glob::Pattern>,
    pub steps: Vec<Step>,
    pub stays_open: bool,
}

/// A parsed table.
#[derive(Debug)]
pub struct Table {
    /// File name under tests/cases/, for messages.
    pub name: String,
    pub header: Header,
    pub cases: Vec<Case>,
}

fn shell_split(s: &str) -> Result<Vec<String>, String> {
    shlex::split(s).ok_or_else(|| format!("cannot shell-split {s:?}"))
}

fn globs(s: &str) -> Result<Vec<glob::Pattern>, String> {
    s.split_whitespace()
        .map(|g| glob::Pattern::new(g).map_err(|e| format!("bad glob {g:?}: {e}")))
        .collect()
}

impl Table {
    /// Parse `text`; any malformed line is an error naming the table and line.
    pub fn parse(name: &str, text: &str) -> Result<Table, String> {
        let mut header = Header {
            args: Vec::new(),
            env: Vec::new(),
            files: Vec::new(),
            setup: Vec::new(),
            probe: Probe::Text,
            cas: false,
        };
        let mut cases: Vec<Case> = Vec::new();
        // Blocks of (line number, line), separated by blank lines; comments dropped.
        let mut blocks: Vec<Vec<(usize, &str)>> = vec![Vec::new()];
        for (i, line) in text.split('\n').enumerate() {
            if line.trim().is_empty() {
                if !blocks.last().is_some_and(Vec::is_empty) {
                    blocks.push(Vec::new());
                }
            } else if !line.starts_with('#') {
                blocks.last_mut().expect("a block").push((i + 1, line));
            }
        }
        for block in blocks.iter().filter(|b| !b.is_empty()) {
            let (line_no, first) = block[0];
            let at = |n: usize, e: String| format!("{name}:{n}: {e}");
            match first.strip_prefix("case ") {
                Some(case_name) => {
                    let case = parse_case(case_name, block, &header).map_err(|(n, e)| at(n, e))?;
                    cases.push(case);
                }
                None if cases.is_empty() => {
                    for &(n, l) in block {
                        parse_header_line(&mut header, l).map_err(|e| at(n, e))?;
                    }
                }
                None => {
                    return Err(at(
                        line_no,
                        format!(
                            "a block after the first case does not start with `case`: {first:?}"
                        ),
                    ))
                }
            }
        }
        Ok(Table {
            name: name.to_string(),
            header,
            cases,
        })
    }

    /// Checks a replay cannot do without a server: distinct case names, every case
    /// sends something, every CAS variable a `send` uses was bound by an earlier
    /// `expect`, and variables are numbered in order of first appearance.
    pub fn check_format(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for c in &self.cases {
            let at = |e: String| format!("{}:{}: case {}: {e}", self.name, c.line, c.name);
            if !names.insert(c.name.as_str()) {
                return Err(at("duplicate case name".into()));
            }
            if c.steps.is_empty() {
                return Err(at("sends nothing".into()));
            }
            let mut bound = 0;
            for (i, s) in c.steps.iter().enumerate() {
                for p in &s.send {
                    if let Piece::Cas { n, .. } = p {
                        if *n > bound {
                            return Err(at(format!(
                                "step {i} sends CAS variable {n} before it is bound"
                            )));
                        }
                    }
                }
                for p in &s.expect {
                    if let Piece::Cas { n, .. } = p {
                        if !self.header.cas {
                            return Err(
                                at("CAS variable in a table without a `cas` header".into()),
                            );
                        }
                        if *n > bound + 1 {
                            return Err(at(format!(
                                "step {i}: CAS variable {n} appears before {}",
                                bound + 1
                            )));
                        }
                        bound = bound.max(*n);
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse_header_line(h: &mut Header, line: &str) -> Result<(), String> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match word {
        "args" => h.args.extend(shell_split(rest)?),
        "env" => {
            let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
            h.env.push((k.to_string(), v.to_string()));
        }
        "file" => {
            let (path, content) = rest.split_once(' ').unwrap_or((rest, ""));
            unescape(content)?;
            h.files.push((path.to_string(), content.to_string()));
        }
        "setup" => h.setup.push(rest.to_string()),
        "probe" => h.probe = Probe::parse(rest)?,
        "cas" => h.cas = true,
        _ => return Err(format!("unknown header line {line:?}")),
    }
    Ok(())
}

fn parse_case(
    name: &str,
    block: &[(usize, &str)],
    header: &Header,
) -> Result<Case, (usize, String)> {
    let mut case = Case {
        name: name.to_string(),
        line: block[0].0,
        args: Vec::new(),
        probe: header.probe,
        mask: Vec::new(),
        keep: Vec::new(),
        steps: Vec::new(),
        stays_open: true,
    };
    let mut conn = None;
    let mut pending_send: Option<Vec<Piece>> = None;
    let mut ours = Vec::new();
    for &(n, l) in &block[1..] {
        let (tag, rest) = l.split_once(' ').unwrap_or((l, ""));
        let pieces = || parse_pieces(rest).map_err(|e| (n, format!("case {name}: {e}")));
        let fail = |e: String| Err((n, format!("case {name}: {e}")));
        match tag {
            "args" => case.args.extend(shell_split(rest).map_err(|e| (n, e))?),
            "probe" => case.probe = Probe::parse(rest).map_err(|e| (n, e))?,
            "mask" => case.mask.extend(globs(rest).map_err(|e| (n, e))?),
            "keep" => case.keep.extend(globs(rest).map_err(|e| (n, e))?),
            "send" => {
                if pending_send.is_some() {
                    return fail("send without expect (run scripts/record-cases.py)".into());
                }
                pending_send = Some(pieces()?);
            }
            "expect" => match pending_send.take() {
                Some(send) => case.steps.push(Step {
                    send,
                    expect: pieces()?,
                    ours: None,
                }),
                None => return fail("expect without send".into()),
            },
            "conn" => match rest {
                "open" => conn = Some(true),
                "closed" => conn = Some(false),
                _ => return fail(format!("bad conn line {l:?}")),
            },
            "ours" => {
                let (step, reply) = rest.split_once(' ').unwrap_or((rest, ""));
                let step: usize = match step.parse() {
                    Ok(s) => s,
                    Err(_) => return fail(format!("bad ours step {step:?}")),
                };
                ours.push((n, step, parse_pieces(reply).map_err(|e| (n, e))?));
            }
            _ => return fail(format!("unknown line {l:?}")),
        }
    }
    if pending_send.is_some() {
        return Err((
            block[0].0,
            format!("case {name}: last send has no recorded expect (run scripts/record-cases.py)"),
        ));
    }
    case.stays_open = conn.ok_or((block[0].0, format!("case {name}: no recorded `conn` line")))?;
    for (n, step, reply) in ours {
        match case.steps.get_mut(step) {
            Some(s) => s.ours = Some(reply),
            None => return Err((n, format!("case {name}: ours step {step} out of range"))),
        }
    }
    Ok(case)
}
