// The naive alternative: a Node.js child process reading one JSON request per
// line on stdin ({"id", "fn", "data"}) and writing one JSON reply per line on
// stdout ({"id", "result"} or {"id", "error"}). Prints {"ready": true} first.
// Exits when stdin closes. Usage: node jsonlines_peer.js CONFIG
'use strict';
const path = require('path');
const readline = require('readline');
const {callFunction} = require('./call.js');

const config = require(path.resolve(process.argv[2]));
const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
rl.on('line', (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    process.stdout.write(JSON.stringify({id: null, error: {type: 'ProtocolError',
                                                           message: e.message}}) + '\n');
    return;
  }
  callFunction(config, req.fn, req.data, (err, result) => {
    const out = err ? {id: req.id, error: err}
                    : {id: req.id, result: result === undefined ? null : result};
    process.stdout.write(JSON.stringify(out) + '\n');
  });
});
rl.on('close', () => process.exit(0));
process.stdout.write(JSON.stringify({ready: true}) + '\n');
