// Headwater from Node with nothing but protos/ and a connection string
// (docs/clients.md). Uses @grpc/grpc-js, @grpc/proto-loader and protobufjs.
//
//   HEADWATER_CONNECTION_STRING="$(headwater connection-string)" node quickstart.js
//
// Signs a SAS token, finds every service from the namespace endpoint
// (GetNamespace), creates a hub, publishes, reads every partition, checkpoints,
// registers a schema, runs a job into a memory sink, reads its rows and decodes
// an error. Prints one JSON object with what it saw as its last line.
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTOS = process.env.HEADWATER_PROTOS || path.resolve(__dirname, '../../../protos');
const RUN = process.env.HEADWATER_RUN_ID || String(Date.now());
const EVENTS = Number(process.env.HEADWATER_EVENTS || 20);

// -- connection string and SAS token -------------------------------------------------
function parseConnectionString(text) {
  const parts = {};
  for (const piece of text.split(';')) {
    const i = piece.indexOf('=');
    if (i > 0) parts[piece.slice(0, i).trim().toLowerCase()] = piece.slice(i + 1).trim();
  }
  const m = /^(\w+):\/\/([^/]+)/.exec(parts.endpoint || '');
  if (!m) throw new Error('connection string needs Endpoint=headwater://host:port/');
  return {
    namespace: `${m[1]}://${m[2]}/`, // the resource (sr) of a namespace-wide token
    address: m[2],
    tls: ['headwaters', 'grpcs', 'https'].includes(m[1]),
    keyName: parts.sharedaccesskeyname,
    key: parts.sharedaccesskey,
  };
}

// SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64 HMAC-SHA256>&se=<expiry>&skn=<policy>
// where the HMAC key is the policy key as text and the string to sign is
// url_encode(resource) + "\n" + expiry: the Event Hubs format.
function sasToken(resource, keyName, key, ttlSeconds = 3600) {
  const expiry = Math.floor(Date.now() / 1000) + ttlSeconds;
  const sr = encodeURIComponent(resource);
  const sig = crypto.createHmac('sha256', key).update(`${sr}\n${expiry}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${expiry}&skn=${encodeURIComponent(keyName)}`;
}

// -- contracts -----------------------------------------------------------------------
const packageDefinition = protoLoader.loadSync(
  ['headwater/v1/namespace.proto', 'headwater/v1/ingestion.proto', 'headwater/v1/schema_registry.proto',
    'headwater/v1/processing.proto', 'headwater/v1/sink.proto'],
  { includeDirs: [PROTOS], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const v1 = grpc.loadPackageDefinition(packageDefinition).headwater.v1;
// google.rpc.Status and ErrorInfo, vendored under protos/google/rpc, decode error details.
const rpcRoot = protobuf.loadSync([path.join(PROTOS, 'google/rpc/status.proto'),
  path.join(PROTOS, 'google/rpc/error_details.proto')]);
const Status = rpcRoot.lookupType('google.rpc.Status');
const ErrorInfo = rpcRoot.lookupType('google.rpc.ErrorInfo');

// Flow control: grpc-js's default HTTP/2 window is 64 KiB, which can cap a read
// stream below what the service sends; a 16 MiB window lets it through
// (`headwater perf node-read` measures it).
const CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
};

function client(Service, address, conn) {
  const creds = conn.tls ? grpc.credentials.createSsl() : grpc.credentials.createInsecure();
  return new Service(address, creds, CHANNEL_OPTIONS);
}

function metadata(conn) {
  const md = new grpc.Metadata();
  md.set('authorization', sasToken(conn.namespace, conn.keyName, conn.key));
  return md;
}

function unary(stub, method, request, conn) {
  return new Promise((resolve, reject) => {
    stub[method](request, metadata(conn), { deadline: Date.now() + 30000 }, (err, resp) => {
      if (err) reject(err); else resolve(resp);
    });
  });
}

// A failed call's reason and metadata: the grpc-status-details-bin trailer is a
// google.rpc.Status whose details hold a google.rpc.ErrorInfo (domain "headwater").
function decodeError(err) {
  const out = { code: grpc.status[err.code], message: err.details };
  const raw = err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return out;
  for (const any of Status.decode(raw).details) {
    if (any.type_url === 'type.googleapis.com/google.rpc.ErrorInfo') {
      const info = ErrorInfo.decode(any.value);
      out.reason = info.reason;
      out.domain = info.domain;
      out.metadata = info.metadata;
    }
  }
  return out;
}

// Reads a partition from the earliest event until `until(events)` says stop.
function readPartition(ingestion, conn, hub, partitionId, until) {
  return new Promise((resolve, reject) => {
    const events = [];
    const stream = ingestion.ReadEvents({
      hub: `hubs/${hub}`, partition_id: partitionId, consumer_group: '$Default',
      event_position: { earliest: true }, max_batch_size: 1000, max_wait: { seconds: 1 },
    }, metadata(conn));
    stream.on('data', (resp) => {
      events.push(...resp.events);
      if (until(events)) stream.cancel();
    });
    stream.on('error', (err) => (err.code === grpc.status.CANCELLED ? resolve(events) : reject(err)));
    stream.on('end', () => resolve(events));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const conn = parseConnectionString(process.env.HEADWATER_CONNECTION_STRING || '');

  // 1. The namespace endpoint says where every service is (no token needed).
  const nsStub = client(v1.NamespaceService, conn.address, conn);
  const ns = (await unary(nsStub, 'GetNamespace', {}, conn)).namespace;
  const ingestion = client(v1.IngestionService, ns.ingestion_address, conn);
  const registry = client(v1.SchemaRegistryService, ns.registry_address, conn);
  const processing = client(v1.ProcessingService, ns.processing_address, conn);
  const sink = client(v1.SinkService, ns.sink_address, conn);

  // 2. A hub with two partitions, then publish: one batch per partition key.
  const hub = `node-trips-${RUN}`;
  await unary(ingestion, 'CreateHub', { hub_id: hub, hub: { partition_count: 2 } }, conn);
  const cities = ['Seattle', 'Portland', 'San Francisco'];
  const trips = Array.from({ length: EVENTS }, (_, i) => ({
    tripId: `t${i}`, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
    startLocation: cities[i % cities.length], fare: 10 + i,
  }));
  for (const city of cities) {
    const events = trips.filter((t) => t.startLocation === city)
      .map((t) => ({ body: Buffer.from(JSON.stringify(t)), content_type: 'application/json' }));
    await unary(ingestion, 'PublishEvents', { hub: `hubs/${hub}`, partition_key: city, events }, conn);
  }

  // 3. Read every partition back, and checkpoint the last event of each.
  const { hub: info } = await unary(ingestion, 'GetHub', { name: `hubs/${hub}` }, conn);
  let total = 0;
  const perPartition = await Promise.all(info.partition_ids.map(async (pid) => {
    const { partition } = await unary(
      ingestion, 'GetPartitionProperties', { name: `hubs/${hub}/partitions/${pid}` }, conn);
    const last = partition.last_enqueued_sequence_number;
    const events = Number(last) < 0 ? [] : await readPartition(
      ingestion, conn, hub, pid, (evs) => evs.length >= Number(last) + 1);
    total += events.length;
    if (events.length) {
      const e = events[events.length - 1];
      await unary(ingestion, 'UpdateCheckpoint', { checkpoint: {
        hub, consumer_group: '$Default', partition_id: pid, offset: e.offset, sequence_number: e.sequence_number,
      } }, conn);
    }
    // The batch's partition_key is stored in each of its events.
    return events.map((e) => ({ ...JSON.parse(e.event.body.toString()), partitionKey: e.event.partition_key }));
  }));
  const { checkpoints } = await unary(ingestion, 'ListCheckpoints', { hub, consumer_group: '$Default' }, conn);

  // 4. Register an Avro schema.
  const group = `node-${RUN}`;
  await unary(registry, 'CreateSchemaGroup', {
    group_id: group, format: 'SCHEMA_FORMAT_AVRO', compatibility: 'COMPATIBILITY_MODE_BACKWARD' }, conn);
  const definition = JSON.stringify({ type: 'record', name: 'Trip', namespace: 'demo',
    fields: [{ name: 'tripId', type: 'string' }, { name: 'fare', type: 'int' }] });
  const { properties } = await unary(registry, 'RegisterSchema', {
    group_name: group, name: 'demo.Trip', definition, format: 'SCHEMA_FORMAT_AVRO' }, conn);

  // 5. A memory sink and a job writing into it; then read the rows.
  const sinkId = `node-out-${RUN}`;
  // Built-in kinds take typed settings (memory, dashboard, postgres, files, delta, webhook, hub).
  const created = await unary(sink, 'CreateSink', { sink_id: sinkId, sink: {
    kind: 'memory', memory: { max_rows: 1000 }, output_mode: 'OUTPUT_MODE_APPEND' } }, conn);
  const jobName = `jobs/node-${RUN}`;
  await unary(processing, 'CreateJob', { job: {
    name: jobName,
    query: 'SELECT tripId, startLocation, fare INTO [out] FROM [trips]',
    inputs: [{ alias: 'trips', kind: 'INPUT_KIND_STREAM', hub: `hubs/${hub}`, format: 'json' }],
    outputs: [{ alias: 'out', sink: `sinks/${sinkId}` }],
  } }, conn);
  await unary(processing, 'StartJob', { name: jobName, start_mode: 'JOB_START_MODE_EARLIEST' }, conn);
  let rows = [];
  for (let i = 0; i < 120 && rows.length < EVENTS; i++) {
    const resp = await unary(sink, 'ReadTable', {
      name: `sinks/${sinkId}`, format: 'RECORD_BATCH_FORMAT_JSON_LINES', page_size: 10000 }, conn);
    rows = resp.batch.data.toString().split('\n').filter(Boolean).map((line) => JSON.parse(line));
    if (rows.length < EVENTS) await sleep(500);
  }
  await unary(processing, 'StopJob', { name: jobName }, conn);

  // 6. Errors: a hub that does not exist.
  let error = null;
  try {
    await unary(ingestion, 'GetHub', { name: 'hubs/no-such-hub' }, conn);
  } catch (err) {
    error = decodeError(err);
  }

  for (const c of [nsStub, ingestion, registry, processing, sink]) c.close();
  console.log(JSON.stringify({
    namespace: ns, published: trips.length, read: total,
    readIds: perPartition.flat().map((t) => t.tripId).sort(),
    keysStored: perPartition.flat().every((t) => t.partitionKey === t.startLocation),
    checkpoints: checkpoints.length, checkpointNames: [checkpoints[0].hub, checkpoints[0].consumer_group], schemaId: properties.id, schemaVersion: properties.version,
    sinkMaxRows: created.sink.memory.max_rows, rows: rows.length, rowIds: rows.map((r) => r.tripId).sort(), error,
  }));
}

main().catch((err) => {
  console.error(`error: ${JSON.stringify(decodeError(err))}`);
  process.exit(1);
});
