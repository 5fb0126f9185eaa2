// memjs (Node, binary protocol only, SASL PLAIN) as our users run it: JSON objects with
// TTLs, 1000 keys read back (pipelined on one connection), counters with initial
// values, append, delete, flush; a wrong password refused. memjs has no CAS call
// and no multi-get.
//
// Usage: node memjs_sasl.js PORT USER PASSWORD   (NODE_PATH names memjs' node_modules)
const memjs = require('memjs');
const [port, user, pass] = process.argv.slice(2);
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS memjs SASL: ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL memjs SASL: ${name}: ${e.message || e}`);
  }
}
function expect(cond, msg) { if (!cond) throw new Error(msg); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  const c = memjs.Client.create(`${user}:${pass}@127.0.0.1:${port}`, { retries: 0, logger: { log() {} } });

  await check('set/get of JSON objects, TTL expires', async () => {
    const obj = { a: [1, 2, 3], b: { c: 'd' }, n: 1.5 };
    expect(await c.set('obj', JSON.stringify(obj), { expires: 60 }), 'set obj');
    const { value } = await c.get('obj');
    expect(value && JSON.stringify(JSON.parse(value.toString())) === JSON.stringify(obj), `get obj: ${value}`);
    await c.set('short', 'x', { expires: 1 });
    expect((await c.get('short')).value.toString() === 'x', 'short before expiry');
    await sleep(2200);
    expect((await c.get('short')).value === null, 'short after expiry');
  });

  await check('1000 keys set and read back', async () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `key:${i}`);
    await Promise.all(keys.map((k, i) => c.set(k, JSON.stringify({ i }), { expires: 300 })));
    const got = await Promise.all(keys.map((k) => c.get(k)));
    got.forEach(({ value }, i) => expect(value && JSON.parse(value.toString()).i === i, `key:${i} -> ${value}`));
  });

  await check('counters with initial values', async () => {
    await c.delete('n');
    let r = await c.increment('n', 5, { initial: 10 });
    expect(r.success && Number(r.value) === 10, `created with the initial value: ${JSON.stringify(r)}`);
    r = await c.increment('n', 5, {});
    expect(Number(r.value) === 15, `incr: ${r.value}`);
    r = await c.decrement('n', 100, {});
    expect(Number(r.value) === 0, `decr floors at 0: ${r.value}`);
  });

  // memjs 1.3.2's prepend sends the Append opcode (0x0e): only append is checked.
  await check('append', async () => {
    await c.set('s', 'mid');
    expect(await c.append('s', '-end'), 'append');
    expect((await c.get('s')).value.toString() === 'mid-end', 'value');
  });

  await check('delete', async () => {
    await c.set('d', 'x');
    expect(await c.delete('d'), 'delete');
    expect((await c.get('d')).value === null, 'gone');
  });

  await check('flush', async () => {
    await c.set('f', 'x');
    await c.flush();
    expect((await c.get('f')).value === null, 'flushed');
  });

  await check('a wrong password is refused', async () => {
    const bad = memjs.Client.create(`${user}:${pass}-wrong@127.0.0.1:${port}`, { retries: 0, logger: { log() {} } });
    let refused = false;
    try { await bad.set('x', 'y'); } catch (e) { refused = true; }
    bad.close();
    expect(refused, 'set with a wrong password succeeded');
  });

  c.close();
  process.exit(failed ? 1 : 0);
})();
