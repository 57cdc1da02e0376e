// js-host's model, rebuilt as the baseline: one Node.js HTTP server per config,
// POST /function/<name> with a JSON body, answered with the result as JSON
// (500 with the error as JSON). Listens on 127.0.0.1 at an ephemeral port and
// prints {"port": N} on stdout once listening. Usage: node jshost_http_peer.js CONFIG
'use strict';
const http = require('http');
const path = require('path');
const {callFunction} = require('./call.js');

const config = require(path.resolve(process.argv[2]));
const PREFIX = '/function/';

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || !req.url.startsWith(PREFIX)) {
    res.writeHead(404, {'Content-Type': 'text/plain'});
    res.end('not found');
    return;
  }
  const name = decodeURIComponent(req.url.slice(PREFIX.length));
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let data;
    try {
      data = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
    } catch (e) {
      res.writeHead(400, {'Content-Type': 'application/json'});
      res.end(JSON.stringify({type: 'InvalidArgument', message: e.message}));
      return;
    }
    callFunction(config, name, data, (err, result) => {
      const body = JSON.stringify(err ? err : result === undefined ? null : result);
      res.writeHead(err ? 500 : 200, {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({port: server.address().port}) + '\n');
});
// The bench closes our stdin when done: exit then, so nothing is left running.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
