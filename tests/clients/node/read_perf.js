// Node read throughput, for `headwater perf node-read` (docs/clients.md, flow control).
//
//   HEADWATER_CONNECTION_STRING=... HEADWATER_HUB=h HEADWATER_PARTITIONS=4 \
//   HEADWATER_WINDOW=16777216 HEADWATER_PACKED=0 node read_perf.js
//
// Reads every partition of the hub at once from the earliest event until each is caught
// up (an empty batch after max_wait), with @grpc/grpc-js and @grpc/proto-loader as an
// application would. HEADWATER_WINDOW is the channel's 'grpc-node.flow_control_window'
// (0: grpc-js's default, 64 KiB). HEADWATER_PACKED=1 asks for the packed batch shape
// (ReadEventsRequest.packed): one bodies buffer per batch instead of one message per event.
// Prints one JSON object: events, bytes, seconds, events_per_s.
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTOS = process.env.HEADWATER_PROTOS || path.resolve(__dirname, '../../../protos');
const HUB = process.env.HEADWATER_HUB;
const PARTITIONS = Number(process.env.HEADWATER_PARTITIONS || 4);
const WINDOW = Number(process.env.HEADWATER_WINDOW || 0);
const PACKED = process.env.HEADWATER_PACKED === '1';
const MAX_WAIT_MS = 200;

function parse(text) {
  const parts = {};
  for (const piece of text.split(';')) {
    const i = piece.indexOf('=');
    if (i > 0) parts[piece.slice(0, i).trim().toLowerCase()] = piece.slice(i + 1).trim();
  }
  const m = /^(\w+):\/\/([^/]+)/.exec(parts.endpoint || '');
  return { namespace: `${m[1]}://${m[2]}/`, address: m[2], keyName: parts.sharedaccesskeyname,
    key: parts.sharedaccesskey };
}

function sasToken(resource, keyName, key) {
  const expiry = Math.floor(Date.now() / 1000) + 3600;
  const sr = encodeURIComponent(resource);
  const sig = crypto.createHmac('sha256', key).update(`${sr}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiry}&skn=${encodeURIComponent(keyName)}`;
}

const conn = parse(process.env.HEADWATER_CONNECTION_STRING || '');
const def = protoLoader.loadSync(['headwater/v1/ingestion.proto'],
  { includeDirs: [PROTOS], keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true });
const v1 = grpc.loadPackageDefinition(def).headwater.v1;
const options = { 'grpc.max_receive_message_length': 64 * 1024 * 1024 };
if (WINDOW > 0) options['grpc-node.flow_control_window'] = WINDOW;
const stub = new v1.IngestionService(conn.address, grpc.credentials.createInsecure(), options);
const md = new grpc.Metadata();
md.set('authorization', sasToken(conn.namespace, conn.keyName, conn.key));

function readPartition(pid, totals) {
  return new Promise((resolve, reject) => {
    const call = stub.ReadEvents({ hub: `hubs/${HUB}`, partition_id: String(pid), event_position: { earliest: true },
      max_batch_size: 10000, max_wait: { nanos: MAX_WAIT_MS * 1e6 }, packed: PACKED }, md);
    call.on('data', (resp) => {
      const n = PACKED ? ((resp.packed && resp.packed.sequence_numbers) || []).length : (resp.events || []).length;
      if (n === 0) { call.cancel(); return; }
      totals.events += n;
      if (PACKED) totals.bytes += resp.packed.bodies.length;
      else for (const e of resp.events) totals.bytes += e.event.body.length;
    });
    call.on('error', (err) => (err.code === grpc.status.CANCELLED ? resolve() : reject(err)));
    call.on('end', resolve);
  });
}

async function main() {
  const totals = { events: 0, bytes: 0 };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => readPartition(p, totals)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9 - MAX_WAIT_MS / 1000; // the last empty long-poll
  stub.close();
  console.log(JSON.stringify({ events: totals.events, bytes: totals.bytes, seconds,
    events_per_s: totals.events / seconds, window: WINDOW, packed: PACKED }));
}

main().catch((err) => { console.error(`error: ${err.message}`); process.exit(1); });
