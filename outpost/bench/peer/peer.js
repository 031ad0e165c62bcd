// outpost bench --peer pouchdb: the peer's side of the three workloads Outpost's own
// scenarios measure (local_action, ingest, propagation), on PouchDB devices (LevelDB
// files) replicating through an express-pouchdb server in a process of its own, as
// Outpost's backend is.
//
//   node peer.js CONFIG_JSON     runs the workloads; one JSON line on stdout
//   node peer.js serve FOLDER    (forked by the above) the server; sends its port
//
// CONFIG_JSON: {"folder", "workloads": [...], "local_actions", "local_board_tasks",
// "ingest_docs", "tasks", "propagation_actions", "propagation_rate", "warm_up_local",
// "warm_up_propagation"}. The output holds raw samples (ms); the Python side takes the
// percentiles with the same function it uses for Outpost's figures.
'use strict';

const fs = require('fs');
const path = require('path');
const { fork } = require('child_process');
const { performance } = require('perf_hooks');

const PouchDB = require('pouchdb-node');

function say(message) {
  process.stderr.write(`[peer] ${message}\n`);
}

function serve(folder) {
  fs.mkdirSync(folder, { recursive: true });
  const express = require('express');
  const expressPouchDB = require('express-pouchdb');
  const ServerDB = PouchDB.defaults({ prefix: folder + path.sep });
  const app = express();
  app.use(
    '/',
    expressPouchDB(ServerDB, { mode: 'minimumForPouchDB', logPath: path.join(folder, 'log.txt') }),
  );
  const listener = app.listen(0, '127.0.0.1', () => {
    process.send({ port: listener.address().port });
  });
  process.on('disconnect', () => process.exit(0));
}

function startServer(folder) {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['serve', folder], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.once('message', (message) => resolve({ child, url: `http://127.0.0.1:${message.port}` }));
    child.once('exit', (code) => reject(new Error(`the peer server exited (${code})`)));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function task(id, title) {
  return { _id: id, type: 'task', board: 'board-1', title, status: 'todo', priority: 0 };
}

async function edit(db, id, title) {
  // What an app does to edit one field: read the document, write the new revision.
  const doc = await db.get(id);
  doc.title = title;
  await db.put(doc);
}

async function waitUntil(condition, timeoutMs, what) {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function localWrites(config) {
  const db = new PouchDB(path.join(config.folder, 'local-device'));
  const ids = [];
  const board = [];
  for (let i = 0; i < config.local_board_tasks; i++) {
    ids.push(`task-${i}`);
    board.push(task(`task-${i}`, `Task ${i}`));
  }
  for (let i = 0; i < board.length; i += 500) await db.bulkDocs(board.slice(i, i + 500));
  say(`local writes: board of ${ids.length} documents ready`);
  const measure = async (action) => {
    const samples = [];
    for (let i = 0; i < config.warm_up_local + config.local_actions; i++) {
      const started = performance.now();
      await action(i);
      const elapsed = performance.now() - started;
      if (i >= config.warm_up_local) samples.push(elapsed);
    }
    return samples;
  };
  const editMs = await measure((i) => edit(db, ids[i % ids.length], `Edit ${i}`));
  const addMs = await measure((i) => db.put(task(`added-${i}`, `Added ${i}`)));
  await db.close();
  return { edit_ms: editMs, add_ms: addMs };
}

async function pair(server, name, config) {
  // Devices A and B with a board of `tasks` documents, replicated to both (not timed).
  const a = new PouchDB(path.join(config.folder, `${name}-a`));
  const b = new PouchDB(path.join(config.folder, `${name}-b`));
  const url = `${server.url}/${name}`;
  const ids = [];
  for (let i = 0; i < config.tasks; i++) ids.push(`task-${i}`);
  await a.bulkDocs(ids.map((id, i) => task(id, `Task ${i}`)));
  await a.replicate.to(url);
  await b.replicate.from(url);
  return { a, b, url, ids };
}

async function ingest(server, config) {
  const { a, b, url, ids } = await pair(server, 'ingest', config);
  const count = config.ingest_docs;
  const docs = [];
  for (let i = 0; i < count; i++) docs.push(task(`ingest-${i}`, `Ingest ${i}`));
  for (let i = 0; i < docs.length; i += 500) await a.bulkDocs(docs.slice(i, i + 500));
  say(`device to device: ${count} documents written on A; replicating`);
  const expected = ids.length + count;
  const started = performance.now();
  const pull = b.replicate.from(url, { live: true, retry: true, batch_size: 500 });
  const push = a.replicate.to(url, { batch_size: 500 });
  await waitUntil(async () => (await b.info()).doc_count >= expected, 300000, 'B to hold A\'s documents');
  const seconds = (performance.now() - started) / 1000;
  await push;
  pull.cancel();
  const last = await b.get(`ingest-${count - 1}`);
  if (last.title !== `Ingest ${count - 1}`) throw new Error(`B shows ${last.title}`);
  await a.close();
  await b.close();
  return { docs: count, seconds };
}

async function propagation(server, config) {
  const { a, b, url, ids } = await pair(server, 'prop', config);
  const push = a.replicate.to(url, { live: true, retry: true });
  const pull = b.replicate.from(url, { live: true, retry: true });
  const seen = {};
  const feed = b.changes({ since: 'now', live: true, include_docs: true }).on('change', (change) => {
    const now = performance.now();
    const title = change.doc && change.doc.title;
    if (typeof title === 'string' && title.startsWith('Prop ')) {
      const i = Number(title.slice(5));
      if (!(i in seen)) seen[i] = now;
    }
  });
  const total = config.warm_up_propagation + config.propagation_actions;
  say(`propagation: ${total} edits at ${config.propagation_rate}/s`);
  const made = {};
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    const delay = started + (i * 1000) / config.propagation_rate - performance.now();
    if (delay > 0) await sleep(delay);
    made[i] = performance.now();
    await edit(a, ids[i % ids.length], `Prop ${i}`);
  }
  await waitUntil(() => total - 1 in seen, 60000, 'B to show A\'s last edit');
  feed.cancel();
  push.cancel();
  pull.cancel();
  await a.close();
  await b.close();
  // ms since an arbitrary origin, the same for both: Python computes the latencies.
  return { made, seen, cycle: ids.length };
}

async function main(config) {
  const versions = {};
  for (const name of ['pouchdb-node', 'express', 'express-pouchdb']) {
    versions[name] = require(`${name}/package.json`).version;
  }
  const out = { versions, node: process.version };
  const workloads = new Set(config.workloads);
  if (workloads.has('local_action')) out.local_action = await localWrites(config);
  if (workloads.has('ingest') || workloads.has('propagation')) {
    const server = await startServer(path.join(config.folder, 'server'));
    try {
      if (workloads.has('ingest')) out.ingest = await ingest(server, config);
      if (workloads.has('propagation')) out.propagation = await propagation(server, config);
    } finally {
      server.child.kill();
    }
  }
  // A pipe takes a large write asynchronously: exit only once it is flushed.
  await new Promise((resolve) => process.stdout.write(JSON.stringify(out) + '\n', resolve));
}

if (process.argv[2] === 'serve') {
  serve(process.argv[3]);
} else {
  main(JSON.parse(process.argv[2])).then(
    () => process.exit(0),
    (error) => {
      process.stderr.write(`[peer] failed: ${error && error.stack ? error.stack : error}\n`);
      process.exit(1);
    },
  );
}
