// Node `ws` server and client on 127.0.0.1:PORT, logging every message each one
// sends as a JSON line on stdout. Needs `ws` (npm install ws) on NODE_PATH.
// Usage: node node_ws.js PORT
'use strict';
const WebSocket = require('ws');
const port = Number(process.argv[2]);
const log = (entry) => process.stdout.write(JSON.stringify(entry) + '\n');
const deflate = { threshold: 0, serverNoContextTakeover: false, clientNoContextTakeover: false };

const server = new WebSocket.Server({ host: '127.0.0.1', port, perMessageDeflate: deflate }, () => {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/node`, { perMessageDeflate: deflate });
  ws.on('open', () => {
    // 1: a compressed text message
    ws.send('hello from node ws');
    log({ direction: 'client', opcode: 'text', text: 'hello from node ws', compressed: true });
    // 2: a fragmented binary message: three frames (fin false, false, true)
    const parts = [Buffer.from('part-one|'), Buffer.from('part-two|'), Buffer.from('part-three')];
    parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }));
    log({ direction: 'client', opcode: 'binary', hex: Buffer.concat(parts).toString('hex'),
      compressed: true });
    // 3: an uncompressed JSON text message
    const json = JSON.stringify({ op: 'sub', topics: ['a', 'b'], n: 3 });
    ws.send(json, { compress: false });
    log({ direction: 'client', opcode: 'text', text: json, compressed: false });
    // 4: a ping with data (the server's ws library answers with a pong)
    ws.ping(Buffer.from('are-you-there'));
    log({ direction: 'client', opcode: 'ping', hex: Buffer.from('are-you-there').toString('hex') });
  });
  ws.on('pong', (data) => {
    log({ direction: 'server', opcode: 'pong', hex: data.toString('hex') });
    // 5: close with an application code
    ws.close(4321, 'node says bye');
    log({ direction: 'client', opcode: 'close', close_code: 4321, close_reason: 'node says bye' });
  });
  ws.on('close', (code, reason) => {
    // what the server sent back, as the client received it
    log({ direction: 'server', opcode: 'close', close_code: code, close_reason: reason.toString() });
    server.close();
  });
});

server.on('connection', (sock) => {
  let n = 0;
  sock.on('message', (data, isBinary) => {
    n += 1;
    const reply = `node server got message ${n} (${data.length} bytes, ${isBinary ? 'binary' : 'text'})`;
    sock.send(reply);
    log({ direction: 'server', opcode: 'text', text: reply, compressed: true });
  });
});
