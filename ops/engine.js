'use strict';
/*
 * The engine for a machine that has node and the app's SQLite binding, but neither
 * python3 nor the sqlite3 CLI (the Step Challenge App's own image).
 *
 * It is ops/engine.py's twin: the same commands and arguments
 * (`node - backup|list|verify|restore|counts|shape|drill ...`), the same files (backups
 * linked into place from fresh temporaries, NAME.sha256 and NAME.json sidecars), the
 * same lock (flock(2) on the folder's .backup.lock, through flock(1) on our open file),
 * the same content hash (SQLite itself writes each row, exactly as the python engine
 * asks it to) and one `__OPS_RESULT__ {json}` line at the end. The toolkit sends it on
 * stdin after ops/engine.py (see ops/node.py); the binding is found from the app's
 * folder (OPS_APP_DIR, default /app): better-sqlite3 first, then node:sqlite.
 */
process.env.SQLITE_USE_URI = '1'; // better-sqlite3 reads it once, when it loads

const fs = require('fs');
const path = require('path');
const os = require('os');
const crypto = require('crypto');
const childProcess = require('child_process');
const { createRequire } = require('module');

const RESULT_MARK = '__OPS_RESULT__';
const NAME_RE = /^steps-([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2})-([0-9]{2})-([0-9]{2})\.db$/;
const TMP_PREFIX = '.tmp-';
const STAGED_AGE = 3600;
const LOCK_NAME = '.backup.lock';
const RESTORE_LOCK = '.restore.lock';
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');
const CHECKS = ['integrity', 'quick'];
const SIDECAR_LIMIT = 1 << 16;
const RECORD_LIMIT = 4 << 20; // NAME.json: every table's row count (engine.RECORD_LIMIT)
const FUTURE_SLACK = 600;
const STEP_PAGES = 4096;
const CONTENT_FORMAT = 'json-2';
const JSON1_FORMAT = 'json-1';
const LEGACY_FORMAT = 'quote-1';
const CONTENT_FORMATS = [CONTENT_FORMAT, JSON1_FORMAT, LEGACY_FORMAT];
// json-2's SQL is ops/engine.py's own (HASH_HEAD_SQL, HASH_PLAN_SQL): ops/node.py puts it
// in front of this file when it ships it, so both engines run the very same statements.
const HASH_SQL = typeof OPS_HASH_SQL === 'undefined' ? null : OPS_HASH_SQL; // eslint-disable-line no-undef
const JSON_ARGS = 100;
const BLOB_STOPS = ['JSON cannot hold BLOB', 'malformed JSON'];
const UNVERIFIABLE = 'unverifiable: no usable checksum record beside it (its .sha256 and .json '
  + 'are missing or unreadable)';
const C = fs.constants;
const NEW_FILE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
const READ_SAFE = C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK;
const ELLIPSIS = '\u2026';

class EngineError extends Error {
  constructor(message, kind = 'error') {
    super(message);
    this.kind = kind;
  }
}

// ------------------------------------------------------------------ the binding

/** better-sqlite3 from the app's folder, else node:sqlite: one small interface. */
function loadBinding(appDir) {
  const tried = [];
  try {
    const req = createRequire(path.join(path.resolve(appDir), 'package.json'));
    const Database = req('better-sqlite3');
    let version = '?';
    try { version = req('better-sqlite3/package.json').version; } catch (e) { /* unknown */ }
    return checkUri(betterSqlite3(Database, version));
  } catch (e) {
    if (e instanceof EngineError) throw e;
    tried.push(`better-sqlite3 (from ${appDir}): ${firstLine(e.message)}`);
  }
  try {
    return checkUri(nodeSqlite(require('node:sqlite')));
  } catch (e) {
    if (e instanceof EngineError) throw e;
    tried.push(`node:sqlite: ${firstLine(e.message)}`);
  }
  throw new EngineError(`node has no SQLite binding here: ${tried.join('; ')}`, 'usage');
}

function checkUri(binding) {
  // A path in a folder that does not exist: opened only if URIs are understood, and
  // nothing is ever created (without URIs it is a literal path in a missing folder).
  try {
    binding.open('file:/nonexistent-ops-probe/x.db?mode=memory', { readonly: false }).close();
  } catch (e) {
    throw new EngineError(`${binding.name} ${binding.version} here cannot open SQLite URIs `
      + '(file:...?mode=ro&immutable=1), which every read of a backup needs', 'usage');
  }
  return binding;
}

function firstLine(text) {
  return String(text).split('\n')[0].slice(0, 200);
}

function betterSqlite3(Database, version) {
  const wrap = (db) => ({
    all(sql, params = []) { return db.prepare(sql).raw(true).all(...params); },
    iterate(sql, params = []) { return db.prepare(sql).raw(true).iterate(...params); },
    get(sql, params = []) { return db.prepare(sql).raw(true).get(...params); },
    exec(sql) { db.exec(sql); },
    fn(name, impl) { db.function(name, { deterministic: true }, impl); },
    close() { db.close(); },
    /** Copy this database into the file ``dest`` with SQLite's backup API. */
    backupTo(dest, onStep) {
      return db.backup(dest, { progress: (p) => onStep(p.totalPages, p.remainingPages) });
    },
  });
  const probe = new Database(':memory:');
  const sqliteVersion = probe.prepare('SELECT sqlite_version()').pluck().get();
  probe.close();
  return {
    name: 'better-sqlite3',
    version,
    sqliteVersion,
    canBackup: true,
    open(file, { readonly = true, timeout = 10000 } = {}) {
      return wrap(new Database(file, { readonly, fileMustExist: readonly, timeout }));
    },
  };
}

function nodeSqlite(sqlite) {
  const wrap = (db) => ({
    all(sql, params = []) { return db.prepare(sql).all(...params).map(Object.values); },
    iterate(sql, params = []) {
      const stmt = db.prepare(sql);
      if (stmt.iterate) return (function* rows() { for (const r of stmt.iterate(...params)) yield Object.values(r); }());
      return stmt.all(...params).map(Object.values);
    },
    get(sql, params = []) { const row = db.prepare(sql).get(...params); return row && Object.values(row); },
    exec(sql) { db.exec(sql); },
    fn(name, impl) {
      if (typeof db.function !== 'function') {
        throw new EngineError('this node:sqlite has no user functions, which the content hash needs (Node >= 22.13 or 23.5 has them)');
      }
      db.function(name, { deterministic: true }, impl);
    },
    close() { db.close(); },
    backupTo(dest, onStep) {
      if (typeof sqlite.backup !== 'function') {
        throw new EngineError('this node:sqlite has no backup() (Node >= 22.16 or 23.8 has it)');
      }
      return sqlite.backup(db, dest, {
        rate: STEP_PAGES,
        progress: (p) => onStep(p.totalPages, p.remainingPages),
      });
    },
  });
  const probe = new sqlite.DatabaseSync(':memory:');
  const sqliteVersion = Object.values(probe.prepare('SELECT sqlite_version()').get())[0];
  probe.close();
  return {
    name: 'node:sqlite',
    version: process.versions.node,
    sqliteVersion,
    canBackup: typeof sqlite.backup === 'function',
    open(file, { readonly = true, timeout = 10000 } = {}) {
      return wrap(new sqlite.DatabaseSync(file, { readOnly: readonly, timeout }));
    },
  };
}

let binding = null;
function sql() {
  if (!binding) binding = loadBinding(process.env.OPS_APP_DIR || '/app');
  return binding;
}

function uri(file, mode) {
  // SQLite URI: '?' and '#' would end the path, '%' starts an escape
  return `file:${String(file).replace(/%/g, '%25').replace(/\?/g, '%3f').replace(/#/g, '%23')}?${mode}`;
}

function openDb(file, { live = false, readonly = true, timeout = 10000 } = {}) {
  const target = readonly ? uri(file, live ? 'mode=ro' : 'mode=ro&immutable=1') : file;
  try {
    return sql().open(target, { readonly, timeout });
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(`cannot open ${file}: ${firstLine(e.message)}`, 'corrupt');
  }
}

// ------------------------------------------------------------------ names and files

function parseCreated(name) {
  const m = NAME_RE.exec(name);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number);
  const when = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (when.getUTCFullYear() !== y || when.getUTCMonth() !== mo - 1 || when.getUTCDate() !== d
      || when.getUTCHours() !== h || when.getUTCMinutes() !== mi || when.getUTCSeconds() !== s
      || y < 1) return null;
  return when;
}

function iso(when) {
  return when.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function backupName(when) {
  return `steps-${iso(when).slice(0, 19).replace(/:/g, '-')}.db`;
}

function checkName(name) {
  if (name.includes('/') || name.includes('\\') || ['', '.', '..'].includes(name)) {
    throw new EngineError(`not a backup name: ${pyRepr(name)} (give a file name, not a path)`, 'usage');
  }
  if (parseCreated(name) === null) {
    throw new EngineError(`not a backup name: ${pyRepr(name)} (expected steps-YYYY-MM-DDTHH-MM-SS.db)`, 'usage');
  }
  return name;
}

function pyRepr(text) {
  return `'${String(text).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function sha256File(file) {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, C.O_RDONLY);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let n;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** ``sha256File`` on a worker thread: ``done`` resolves to the digest (or rejects with
 * the worker's error); ``stop()`` ends it early and is harmless once it has ended. The
 * worker runs this very function, so both read the file the same way. */
function sha256Beside(file) {
  const { Worker } = require('worker_threads');
  const code = `const { parentPort, workerData } = require('worker_threads');
const fs = require('fs'); const crypto = require('crypto'); const C = fs.constants;
${sha256File.toString()}
parentPort.postMessage(sha256File(workerData));`;
  const worker = new Worker(code, { eval: true, workerData: file });
  let stopped = false;
  const done = new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (status) => reject(new Error(stopped ? 'stopped' : `the SHA-256 worker exited with ${status}`)));
  });
  done.catch(() => {}); // a stopped worker's end is nobody's error
  return { done, stop: () => { stopped = true; return worker.terminate(); } };
}

function fsyncPath(file) {
  const fd = fs.openSync(file, C.O_RDONLY);
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

function writePrivate(file, text) {
  const fd = fs.openSync(file, NEW_FILE, 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  } catch (e) {
    try { fs.closeSync(fd); } catch (_) { /* closed */ }
    try { fs.unlinkSync(file); } catch (_) { /* gone */ }
    throw e;
  }
}

/** A small regular file's bytes, or null for anything else (never blocks, never follows). */
function readSmall(file, limit = SIDECAR_LIMIT) {
  let fd;
  try { fd = fs.openSync(file, READ_SAFE); } catch (e) { return null; }
  try {
    if (!fs.fstatSync(fd).isFile()) return null;
    const buf = Buffer.alloc(limit + 1);
    let got = 0;
    let n;
    while (got < buf.length && (n = fs.readSync(fd, buf, got, buf.length - got, null)) > 0) got += n;
    return got > limit ? null : buf.subarray(0, got);
  } catch (e) {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

const isSha256 = (v) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const sidecars = (file) => [`${file}.sha256`, `${file}.json`];

function strictText(raw, encoding) {
  try {
    return new TextDecoder(encoding, { fatal: true }).decode(raw);
  } catch (e) {
    return null;
  }
}

function readRecordedSha256(file) {
  const raw = readSmall(sidecars(file)[0]);
  const text = raw === null ? null : strictText(raw, 'utf-8');
  if (text === null || /[^\x00-\x7f]/.test(text)) return null;
  const fields = text.split(/[ \t\n\r\x0b\x0c\x1c-\x1f]+/).filter(Boolean); // python's str.split()
  if (fields.length === 2 && isSha256(fields[0]) && fields[1].replace(/^\*+/, '') === path.basename(file)) {
    return fields[0];
  }
  return null;
}

function readManifest(file) {
  const raw = readSmall(sidecars(file)[1], RECORD_LIMIT);
  const text = raw === null ? null : strictText(raw, 'utf-8');
  let data;
  try { data = text === null ? null : JSON.parse(text); } catch (e) { return null; }
  if (!isObject(data) || data.name !== path.basename(file)) return null;
  if (!Number.isInteger(data.size) || !isSha256(data.sha256)) return null;
  return data;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function recordedSha256s(file) {
  const found = {};
  const digest = readRecordedSha256(file);
  if (digest) found[path.basename(sidecars(file)[0])] = digest;
  const manifest = readManifest(file);
  if (manifest) found[path.basename(sidecars(file)[1])] = manifest.sha256;
  return found;
}

function readHeader(file, bytes = 100) {
  let fd;
  try { fd = fs.openSync(file, READ_SAFE); } catch (e) { return null; }
  try {
    const buf = Buffer.alloc(bytes);
    const n = fs.readSync(fd, buf, 0, bytes, 0);
    return buf.subarray(0, n);
  } catch (e) {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

function headerAgrees(file, size) {
  const header = readHeader(file);
  if (!header || header.length < 100 || !header.subarray(0, 16).equals(SQLITE_HEADER)) return false;
  let pageSize = header.readUInt16BE(16);
  pageSize = pageSize === 1 ? 65536 : pageSize;
  if (pageSize < 512 || (pageSize & (pageSize - 1))) return false;
  const pages = header.readUInt32BE(28);
  if (pages && header.subarray(24, 28).equals(header.subarray(92, 96))) return pages * pageSize === size;
  return size >= pageSize && size % pageSize === 0;
}

function manifestAgrees(file, size) {
  const manifest = readManifest(file);
  return manifest !== null && manifest.size === size
    && readRecordedSha256(file) === manifest.sha256 && headerAgrees(file, size);
}

function readPageSize(file) {
  const header = readHeader(file, 18) || Buffer.alloc(0);
  const size = header.length === 18 ? header.readUInt16BE(16) : 4096;
  return size === 1 ? 65536 : size || 4096;
}

function lexists(file) {
  try { fs.lstatSync(file); return true; } catch (e) { return false; }
}

function checkSqliteFile(file, what) {
  let info;
  try { info = fs.statSync(file); } catch (e) {
    throw new EngineError(`${what} not found: ${file}`, 'not_found');
  }
  if (info.isDirectory()) throw new EngineError(`${what} is a directory, not a database file: ${file}`, 'usage');
  let fd;
  try { fd = fs.openSync(file, C.O_RDONLY | C.O_NONBLOCK); } catch (e) {
    if (e.code === 'EACCES') throw new EngineError(`cannot read ${what} ${file}: permission denied`);
    throw new EngineError(`${what} not found: ${file}`, 'not_found');
  }
  let header;
  try {
    info = fs.fstatSync(fd, { bigint: true });
    if (!info.isFile()) throw new EngineError(`${what} is not a regular file: ${file}`, 'usage');
    header = Buffer.alloc(16);
    header = header.subarray(0, fs.readSync(fd, header, 0, 16, 0));
  } finally {
    fs.closeSync(fd);
  }
  if (what === 'database') refuseOtherNames(file, info);  // a corrupt one too (engine.py)
  if (!header.equals(SQLITE_HEADER)) throw new EngineError(`${what} is not a SQLite database: ${file}`, 'corrupt');
}

/** engine.own_names: a restore's crash leftovers that share the live database's inode. */
function ownNames(name) {
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^(?:${esc(TMP_PREFIX)}restore-${esc(name)}\\.[0-9]+|${esc(name)}\\.(?:corrupt|stale)-`
    + '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}Z(?:-[0-9]+)?)$');
}

/** engine.refuse_other_names: a live database with another name (a hard link) has another
 * -wal, so a backup or restore through this name can miss what the app writes there. */
function refuseOtherNames(file, info = null) {
  if (info === null) {
    try { info = fs.statSync(file, { bigint: true }); } catch (e) { return; }  // judged later
  }
  if (!info.isFile() || info.nlink === 1n) return;
  const real = fs.realpathSync(file);
  const dir = path.dirname(real);
  const base = path.basename(real);
  const others = [];
  // as bytes, one character each (latin1): a name that is not UTF-8 is still found, and
  // sorted and shown byte for byte, as the sqlite3 CLI's shell does
  let names = [];
  try { names = fs.readdirSync(dir, { encoding: 'buffer' }); } catch (e) { /* unreadable */ }
  for (const name of names) {
    if (name.equals(Buffer.from(base))) continue;
    try {
      const seen = fs.lstatSync(Buffer.concat([Buffer.from(`${dir}/`), name]), { bigint: true });
      if (seen.ino === info.ino && seen.dev === info.dev) others.push(name.toString('latin1'));
    } catch (e) { /* gone meanwhile */ }
  }
  const ours = ownNames(Buffer.from(base).toString('latin1'));
  // in the order the sqlite3 CLI's shell walks the folder (* .[!.]* ..?*, each byte by byte)
  const group = (name) => (name.startsWith('..') ? 2 : name.startsWith('.') ? 1 : 0);
  const foreign = others.filter((name) => !ours.test(name))
    .sort((a, b) => group(a) - group(b) || (a < b ? -1 : a > b ? 1 : 0));
  const outside = Number(info.nlink) - 1 - others.length;  // names in other folders
  if (!foreign.length && outside <= 0) return;
  let top = dir;  // a hard link stays on its filesystem: look from where that starts
  try {
    while (path.dirname(top) !== top && fs.statSync(path.dirname(top), { bigint: true }).dev === info.dev) {
      top = path.dirname(top);
    }
  } catch (e) { /* as far as it could look */ }
  // the machine's paths are plain (remote.remote_path): nothing to quote in the find
  const dirBytes = Buffer.from(`${dir}/`).toString('latin1');
  throw new EngineError(otherNamesSaid(file, foreign.map((name) => nameShown(dirBytes, name)),
    outside, `find ${top} -xdev -samefile ${real} 2>/dev/null`), 'linked');
}

/** engine.other_names_said: the same line. */
function otherNamesSaid(file, shown, outside, find) {
  const count = shown.length + Math.max(outside, 0);
  const names = count > 1 ? `${count} other names (hard links)` : 'another name (a hard link)';
  const said = `database ${file} has ${names}: remove every name but the one the app opens (if `
    + 'that is not this one, set db.path or db.remote_path to it first): SQLite keeps a '
    + '-wal per name, so through another name a backup misses the app\'s writes and its '
    + '-wal can undo a restore. Nothing was changed. ';
  const listed = shown.slice(0, 3).filter((name) => name !== null);
  const hidden = shown.length - listed.length;
  const s = count > 1 ? 's' : '';
  if (!hidden && outside <= 0) return `${said}The other name${s}: ${listed.join(', ')}`;
  const more = hidden ? (listed.length ? `, and ${hidden} not shown` : 'not shown') : '';
  const parts = [...(shown.length ? [`${shown.length} beside it (${listed.join(', ')}${more})`] : []),
    ...(outside > 0 ? [`${outside} outside its folder`] : [])];
  return `${said}The other name${s}, which \`${find}\` lists: ${parts.join(' and ')}`;
}

/** engine.name_shown: in single quotes, pasteable as it stands; null (counted, the find
 * lists it) for a name over 100 bytes or with a byte outside printable ASCII, a quote, a
 * backslash or a backtick. ``dir``, ``name``: a byte a character (latin1). */
function nameShown(dir, name) {
  const plain = (c) => c >= ' ' && c <= '~' && !'\'"\\`'.includes(c);
  if (name.length > 100 || ![...`${dir}${name}`].every(plain)) return null;
  return `'${dir}${name}'`;
}

function prepareDir(dir) {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    if (e.code === 'EEXIST' || e.code === 'ENOTDIR') throw new EngineError(`backup folder is not a folder: ${dir}`, 'usage');
    throw new EngineError(`cannot create backup folder ${dir}: ${e.message}`, 'usage');
  }
  if (!fs.statSync(dir).isDirectory()) throw new EngineError(`backup folder is not a folder: ${dir}`, 'usage');
  try { fs.accessSync(dir, C.W_OK | C.X_OK); } catch (e) {
    throw new EngineError(`backup folder is not writable: ${dir}`, 'usage');
  }
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

// ------------------------------------------------------------------ lock

/**
 * flock(2) on ``lockPath``, the lock ops/engine.py and the shell scripts take: node has no
 * flock of its own, so flock(1) locks our open file description (inherited as fd 3) and
 * exits; the lock stays ours until this process ends (the kernel drops it, even on kill -9).
 */
function fileLock(lockPath, wait, what) {
  let fd;
  try {
    fd = fs.openSync(lockPath, C.O_RDWR | C.O_CREAT | C.O_NOFOLLOW | C.O_NONBLOCK, 0o600);
  } catch (e) {
    const kinds = { ELOOP: 'a symlink', EISDIR: 'a directory', ENXIO: 'a socket' };
    if (!kinds[e.code]) throw new EngineError(`cannot open the lock file ${lockPath}: ${e.message}`);
    throw new EngineError(`refusing the lock file ${lockPath}: ${kinds[e.code]}, not a regular `
      + 'file this tool made; remove it if nothing else needs it');
  }
  const info = fs.fstatSync(fd);
  if (!info.isFile() || info.nlink !== 1) {
    fs.closeSync(fd);
    const kind = info.isFile() ? 'another name of some file (a hard link)' : (info.isFIFO() ? 'a FIFO' : 'a device or socket');
    throw new EngineError(`refusing the lock file ${lockPath}: ${kind}, not a regular file this `
      + 'tool made; remove it if nothing else needs it');
  }
  const deadline = Date.now() + Math.max(Number(wait) || 0, 0) * 1000;
  for (;;) {
    const done = childProcess.spawnSync('flock', ['-n', '-x', '3'], { stdio: ['ignore', 'ignore', 'ignore', fd] });
    if (done.error) {
      fs.closeSync(fd);
      throw new EngineError(`this host has no flock(1), so the backup lock ${lockPath} cannot be `
        + 'taken: install util-linux or busybox');
    }
    if (done.status === 0) break;
    if (Date.now() >= deadline) {
      const holder = readHolder(fd);
      fs.closeSync(fd);
      const hint = (Number(wait) || 0) <= 0 ? ' (use --lock-wait SECONDS to wait for it)' : '';
      throw new EngineError(`${what} holds the lock ${lockPath}: ${holder || 'unknown'}${hint}`, 'locked');
    }
    sleep(100);
  }
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, holderText(), 0);
  return () => fs.closeSync(fd);
}

function readHolder(fd) {
  const buf = Buffer.alloc(512);
  try { return buf.subarray(0, fs.readSync(fd, buf, 0, 512, 0)).toString().trim(); } catch (e) { return ''; }
}

function holderText() {
  const user = process.env.GITHUB_ACTOR || process.env.USER || 'unknown';
  return `${user} (pid ${process.pid} on ${os.hostname()}) since ${iso(new Date())}`;
}

function withLock(lockPath, wait, what, fn) {
  const release = fileLock(lockPath, wait, what);
  const done = (value) => { release(); return value; };
  try {
    const result = fn();
    if (result && typeof result.then === 'function') {
      return result.then(done, (e) => { release(); throw e; });
    }
    return done(result);
  } catch (e) {
    release();
    throw e;
  }
}

const STAGED_NAME = /^\.upload-steps-[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}-[0-9]{2}-[0-9]{2}\.db\.[0-9]{1,10}$/; // engine.STAGED_NAME

function staleStaged(dir, entry) { // engine._leftover_entries: our exact name, a regular file of ours, unwritten
  if (!STAGED_NAME.test(entry.name) || !entry.isFile()) return false;
  try {
    const info = fs.lstatSync(path.join(dir, entry.name));
    return info.uid === process.getuid() && Date.now() / 1000 - info.mtimeMs / 1000 > STAGED_AGE;
  } catch (e) { return false; }
}

function removeStaleTemporaries(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if ((entry.name.startsWith(TMP_PREFIX) && !entry.isDirectory()) || staleStaged(dir, entry)) {
      try { fs.unlinkSync(path.join(dir, entry.name)); } catch (e) { /* gone */ }
    }
  }
}

// ------------------------------------------------------------------ backup

function humanSize(size) {
  for (const unit of ['B', 'kB', 'MB', 'GB']) {
    if (Math.abs(size) < 1000) return unit === 'B' ? `${size.toFixed(0)} ${unit}` : `${size.toFixed(1)} ${unit}`;
    size /= 1000;
  }
  return `${size.toFixed(1)} TB`;
}

function spaceNeeded(source) {
  let wal = 0;
  try { wal = fs.statSync(`${source}-wal`).size; } catch (e) { /* none */ }
  return fs.statSync(source).size + wal;
}

function freeSpace(dir) {
  if (typeof fs.statfsSync !== 'function') return Infinity;
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

function freeSpaceCheck(source, dir) {
  const needed = spaceNeeded(source);
  const free = freeSpace(dir);
  if (free < needed) {
    throw new EngineError(`not enough free space in ${dir}: ${humanSize(free)} free, the backup `
      + `needs about ${humanSize(needed)}`, 'no_space');
  }
}

function uniqueName(dir) {
  let name;
  for (let i = 0; i < 5; i += 1) {
    const now = new Date();
    name = backupName(now);
    const final = path.join(dir, name);
    if (![final, ...sidecars(final)].some(lexists)) return [name, new Date(Math.floor(now / 1000) * 1000)];
    sleep(1000 - (now % 1000) + 10);
  }
  throw new EngineError(`backup ${name} already exists in ${dir}`, 'exists');
}

/**
 * SQLite's backup API from ``src`` into the file ``target``: all of it, or an error.
 * better-sqlite3 resolves a backup whose first step met a locked database as if it had
 * finished (sqlite3_backup_remaining() is 0 until a step succeeds), having copied nothing:
 * measured, a restore under a writer "succeeded" and left the live database as it was. A
 * real copy always reports at least one step to ``onStep`` first, so one that did not is
 * tried again, until ``deadline``.
 */
async function backupAll(src, target, onStep, deadline, busyMessage) {
  for (;;) {
    let stepped = false;
    await src.backupTo(target, (total, remaining) => {
      stepped = true;
      return onStep(total, remaining);
    });
    if (stepped) return;
    if (Date.now() > deadline) throw new EngineError(busyMessage, 'timeout');
    sleep(50);
  }
}

/** Copy the live database into ``target`` inside one read transaction (never restarted). */
async function copyDatabase(source, target, timeout) {
  const src = openDb(source, { live: true, timeout: 5000 });
  const deadline = timeout ? Date.now() + timeout * 1000 : null;
  try {
    src.exec('BEGIN');
    src.get('SELECT count(*) FROM sqlite_master');
    const late = `backup did not finish within ${timeout || 30}s`;
    try {
      await backupAll(src, target, () => {
        if (deadline !== null && Date.now() > deadline) throw new EngineError(late, 'timeout');
        return STEP_PAGES;
      }, deadline || Date.now() + 30000, late);
    } catch (e) { // the database was readable: the binding's backup call failed
      if (e instanceof EngineError || /full/.test(e.message)) throw e;
      throw new EngineError(`${sql().name}'s backup() of ${source} into ${path.basename(target)} failed: ${firstLine(e.message)}`);
    }
    src.exec('COMMIT');
  } catch (e) {
    if (e instanceof EngineError) throw e;
    if (/full/.test(e.message)) throw new EngineError(`backup folder is full: ${path.dirname(target)}`, 'no_space');
    throw new EngineError(`cannot read database ${source}: ${firstLine(e.message)}`, 'corrupt');
  } finally {
    src.close();
  }
}

const CHECK_NOT_RUN = /out of memory|disk i\/o error|disk is full|unable to open|interrupted|database is locked|killed/i;

/** A check that could not run (engine.py check_could_not_run) is no verdict on the file:
 * it throws; otherwise it returns and the error is a problem of the file. */
function notRun(e, pragma, file, locked = true) {
  if (!CHECK_NOT_RUN.test(e.message) || (!locked && /locked/i.test(e.message))) return;
  throw new EngineError(`the ${pragma} of ${path.basename(file)} could not run (${firstLine(e.message)}): the file was not judged, nothing was changed; this says nothing about the file: look at the memory and disk where it ran, then run again`, /full/i.test(e.message) ? 'no_space' : 'check_failed');
}

function runCheck(file, check = 'integrity') {
  if (!CHECKS.includes(check)) throw new EngineError(`unknown check ${pyRepr(check)}: use one of ${CHECKS.join(', ')}`, 'usage');
  const pragma = check === 'integrity' ? 'integrity_check' : 'quick_check';
  let conn;
  try { conn = openDb(file); } catch (e) { return [`cannot open: ${e.message}`]; }
  let rows;
  try {
    rows = conn.all(`PRAGMA ${pragma}`).map((r) => String(r[0]));
  } catch (e) {
    notRun(e, pragma, file);
    return [firstLine(e.message)];
  } finally {
    conn.close();
  }
  if (rows.length === 1 && rows[0] === 'ok') return [];
  return rows.flatMap((r) => r.split('\n')).map((l) => l.trim()).filter((l) => l && !l.startsWith('*** in database'));
}

function checkLive(file, check = 'integrity') {
  const pragma = check === 'integrity' ? 'integrity_check' : 'quick_check';
  let conn;
  try { conn = openDb(file, { live: true }); } catch (e) { return [`cannot open: ${e.message}`]; }
  try {
    const rows = conn.all(`PRAGMA ${pragma}`).map((r) => String(r[0]));
    return rows.length === 1 && rows[0] === 'ok' ? [] : rows.filter((l) => l.trim());
  } catch (e) {
    notRun(e, pragma, file, false); // a busy live database stays the caller's to judge
    return [firstLine(e.message)];
  } finally {
    conn.close();
  }
}

function publish(tmp, final, result) {
  const [sumPath, jsonPath] = sidecars(final);
  const contents = [[sumPath, `${result.sha256}  ${path.basename(final)}\n`],
    [jsonPath, `${asciiJson(result, 2)}\n`]];
  const staged = [];
  const placed = [];
  try {
    for (const [file, text] of contents) {
      const hidden = path.join(path.dirname(file), `${TMP_PREFIX}${path.basename(file)}.${process.pid}`);
      writePrivate(hidden, text);
      staged.push([hidden, file]);
    }
    for (const [hidden, file] of staged) {
      fs.linkSync(hidden, file);
      placed.push(file);
    }
    if (tmp !== null) { // null: records only, beside a file already in place (adopt)
      fs.linkSync(tmp, final);
      placed.push(final);
    }
  } catch (e) {
    unlinkAll(placed);
    if (e.code === 'EEXIST') throw new EngineError(`${path.basename(e.dest || final)} already exists; not overwritten`, 'exists');
    throw e;
  } finally {
    unlinkAll(staged.map(([hidden]) => hidden));
  }
  fsyncPath(path.dirname(final));
}

function unlinkAll(files) {
  for (const file of files) {
    try { fs.unlinkSync(file); } catch (e) { /* gone */ }
  }
}

/** JSON as python's json.dumps writes it: every non-ASCII character escaped. */
function asciiJson(value, indent) {
  return JSON.stringify(value, null, indent).replace(/[\u0080-\uffff]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

async function createBackup(source, dir, { check = 'integrity', timeout = null, lockWait = 0, contentHash = true } = {}) {
  if (!CHECKS.includes(check)) throw new EngineError(`unknown check ${pyRepr(check)}: use one of ${CHECKS.join(', ')}`, 'usage');
  checkSqliteFile(source, 'database');
  prepareDir(dir);
  return withLock(path.join(dir, LOCK_NAME), lockWait, 'another backup',
    () => backupLocked(source, dir, { check, timeout, contentHash }));
}

/** The record fields of a restore's safety backup, as engine.py's safety_marks writes them:
 * kind "safety" is never `latest`, so a retried restore never puts back what it replaced. */
function safetyMarks(restore) {
  if (!restore) return {};
  return { kind: 'safety', restore: { when: String(restore.when || ''), backup: String(restore.backup || '') } };
}

async function backupLocked(source, dir, { check, timeout, contentHash, restore = null }) {
  removeStaleTemporaries(dir);
  freeSpaceCheck(source, dir);
  const started = Date.now();
  const [name, when] = uniqueName(dir);
  const final = path.join(dir, name);
  const tmp = path.join(dir, `${TMP_PREFIX}${name}.${process.pid}`);
  const made = [];
  try {
    fs.closeSync(fs.openSync(tmp, NEW_FILE, 0o600));
    made.push(tmp, `${tmp}-journal`);
    await copyDatabase(source, tmp, timeout);
    const copied = fs.statSync(tmp).size;
    if (!copied || !headerAgrees(tmp, copied)) {
      throw new EngineError(`the new backup is not a whole SQLite database (${copied} bytes)`, 'verify_failed');
    }
    fsyncPath(tmp);
    // one read of the copy (issue 21): the SHA-256 on a worker thread while SQLite checks
    // (synchronous) on this one, then the counts, whose pages the check just read
    const hashing = sha256Beside(tmp);
    let digest, described;
    try {
      const problems = runCheck(tmp, check);
      if (problems.length) throw new EngineError(`the new backup failed ${check}_check: ${problems[0]}`, 'verify_failed');
      // no content hash at backup time (issue 21): the drill and the restore's proof hash
      // the verified file; contentHash (backup.content_hash) is accepted and ignored
      described = { tables: countRows(tmp), content_sha256: null, content_format: null };
      digest = await hashing.done;
    } finally {
      await hashing.stop();
    }
    const result = {
      name, path: final, created: iso(when), size: fs.statSync(tmp).size, sha256: digest,
      check, seconds: round3((Date.now() - started) / 1000), source, strategy: 'node',
      sqlite_version: sql().sqliteVersion, host: os.hostname(), binding: sql().name,
      tables: described.tables, content_sha256: described.content_sha256,
      content_format: described.content_format, ...safetyMarks(restore),
    };
    publish(tmp, final, result);
    delete result.binding;
    return result;
  } catch (e) {
    if (e.code === 'ENOSPC' || e.code === 'EDQUOT') throw new EngineError(`backup folder is full: ${dir}`, 'no_space');
    if (e instanceof EngineError) throw e;
    throw new EngineError(`backup failed: ${firstLine(e.message)}`);
  } finally {
    unlinkAll(made);
  }
}

const round3 = (x) => Math.round(x * 1000) / 1000;

// ------------------------------------------------------------------ list / verify

function listBackups(dir) {
  let entries;
  try {
    if (!fs.statSync(dir).isDirectory()) return [];
    entries = fs.readdirSync(dir);
  } catch (e) {
    return [];
  }
  const found = [];
  for (const name of entries) {
    const created = parseCreated(name);
    if (created === null) continue;
    const file = path.join(dir, name);
    let info;
    try { info = fs.lstatSync(file); } catch (e) { continue; }
    if (!info.isFile()) continue;
    found.push({
      name, path: file, created: iso(created), size: info.size,
      sha256: readRecordedSha256(file), verified: manifestAgrees(file, info.size),
    });
  }
  return found.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** What NAME.json says a backup is (engine.backup_identity): 'unrecorded' with no readable record. */
function recordedKind(file) {
  const raw = readSmall(sidecars(file)[1], RECORD_LIMIT);
  if (raw === null) return 'unrecorded';
  const text = raw.toString('utf-8');
  let data = null;
  try { data = JSON.parse(text); } catch (e) { /* read the field as the listing's sh does */ }
  if (!isObject(data)) {
    const hits = [...text.replace(/[\r\n]/g, '').matchAll(/"kind": *"([^"\\]*)"/g)];
    return hits.length ? hits[hits.length - 1][1] : 'backup';
  }
  return data.kind === undefined ? 'backup' : data.kind;
}

function resolveBackup(dir, which) {
  const backups = listBackups(dir);
  if (which === 'latest' || which === 'all') {
    if (!backups.length) throw new EngineError(`no backups in ${dir}`, 'not_found');
    if (which === 'all') return backups;
    const now = Date.now();
    // engine.latest_of: never a safety backup, nor one whose record is missing or unreadable
    const current = backups.filter((b) => (Date.parse(b.created) - now) / 1000 <= FUTURE_SLACK
      && ['backup', 'adopted'].includes(recordedKind(b.path)));
    if (!current.length) throw new EngineError(`no backup in ${dir} that \`latest\` can name; name one to use it`, 'not_found');
    return current.slice(-1);
  }
  checkName(which);
  const match = backups.filter((b) => b.name === which);
  if (!match.length) throw new EngineError(`no backup named ${which} in ${dir}`, 'not_found');
  return match;
}

function checksumProblems(records, digest) {
  const values = Object.values(records);
  const recorded = values[0];
  if (new Set(values).size > 1) {
    return ['SHA-256 mismatch: the records disagree ('
      + Object.entries(records).map(([where, v]) => `${where} ${v.slice(0, 12)}${ELLIPSIS}`).join(', ')
      + `), file has ${digest.slice(0, 12)}${ELLIPSIS}`];
  }
  if (recorded && recorded !== digest) {
    return [`SHA-256 mismatch: recorded ${recorded.slice(0, 12)}${ELLIPSIS}, file has ${digest.slice(0, 12)}${ELLIPSIS}`];
  }
  return [];
}

function fileSize(file) {
  try { return fs.statSync(file).size; } catch (e) { return 0; }
}

function verifyBackup(file, check = 'integrity') {
  const name = path.basename(file);
  const problems = [];
  try {
    checkSqliteFile(file, 'backup');
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    return { name, ok: false, check, size: fileSize(file), sha256: '', recorded_sha256: null, problems: [e.message] };
  }
  const records = recordedSha256s(file);
  const recorded = Object.values(records)[0] || null;
  const digest = sha256File(file);
  problems.push(...checksumProblems(records, digest), ...runCheck(file, check));
  if (!Object.keys(records).length) problems.push(UNVERIFIABLE);
  return { name, ok: !problems.length, check, size: fileSize(file), sha256: digest, recorded_sha256: recorded, problems };
}

/** One of several named backups: one gone (or no longer a file) is its own failed verdict. */
function verifyNamed(dir, name, check) {
  try {
    return verifyBackup(resolveBackup(dir, name)[0].path, check);
  } catch (e) {
    if (!(e instanceof EngineError) || e.kind !== 'not_found') throw e;
    return { name, ok: false, check, size: 0, sha256: '', recorded_sha256: null, problems: [e.message] };
  }
}

// ------------------------------------------------------------------ content: row counts and hash

const quoteId = (name) => `"${name.replace(/"/g, '""')}"`;

function userTables(conn) {
  return conn.all("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
    + "ESCAPE '\\' AND coalesce(sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY name").map((r) => r[0]);
}

function columns(conn, table) {
  return conn.all(`PRAGMA table_info(${quoteId(table)})`).map((r) => [r[1], r[2], r[5]]);
}

function rowOrder(conn, table, cols) {
  try {
    conn.all(`SELECT rowid FROM ${quoteId(table)} LIMIT 0`);
    return 'rowid';
  } catch (e) {
    const keys = cols.filter((c) => c[2]).sort((a, b) => a[2] - b[2]);
    return keys.map((c) => quoteId(c[0])).join(', ') || '1';
  }
}

function valueSql(column) {
  const c = quoteId(column);
  return `CASE typeof(${c}) WHEN 'real' THEN 'F' || printf('%!.17g', ${c}) ELSE quote(${c}) END`;
}

function taggedSql(column) {
  const c = quoteId(column);
  return `CASE typeof(${c}) WHEN 'integer' THEN ${c} WHEN 'text' THEN 't' || ${c} `
    + `WHEN 'real' THEN 'r' || printf('%!.17g', ${c}) WHEN 'blob' THEN 'b' || hex(${c}) END`;
}

function jsonb() {
  const [a, b] = sql().sqliteVersion.split('.').map(Number);
  return a > 3 || (a === 3 && b >= 45);
}

function guardedSql(column) {
  const c = quoteId(column);
  return jsonb() ? `CASE WHEN typeof(${c}) = 'blob' THEN json('b' || hex(${c})) ELSE ${c} END` : c;
}

function textAffinity(declared) {
  const kind = (declared || '').toUpperCase();
  return !kind.includes('INT') && ['CHAR', 'CLOB', 'TEXT'].some((w) => kind.includes(w));
}

function rowSql(cols, fmt, tagged) {
  if (fmt === LEGACY_FORMAT) return cols.map((c) => valueSql(c[0])).join(" || ',' || ") || "''";
  const values = cols.map(([name, declared]) => (textAffinity(declared) && !tagged ? guardedSql(name) : taggedSql(name)));
  const groups = [];
  for (let i = 0; i < values.length; i += JSON_ARGS) groups.push(`json_array(${values.slice(i, i + JSON_ARGS).join(', ')})`);
  return groups.join(' || ') || "'[]'";
}

function bestFormat(conn) {
  try {
    conn.get('SELECT json_array(1)');
    return CONTENT_FORMAT;
  } catch (e) {
    return LEGACY_FORMAT;
  }
}

/** Text exactly as SQLite stores it (UTF-8 databases) as bytes: what python reads with
 * text_factory=bytes. */
function bytesOf(value) {
  if (value === null || value === undefined) return Buffer.alloc(0);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.from(value);
}

function hashRows(conn, table, order, row, digest, utf8) {
  const expr = utf8 ? `CAST((${row}) AS BLOB)` : `(${row})`;
  let count = 0;
  const newline = Buffer.from('\n');
  for (const r of conn.iterate(`SELECT ${expr} FROM ${quoteId(table)} ORDER BY ${order}`)) {
    digest.update(bytesOf(r[0]));
    digest.update(newline);
    count += 1;
  }
  return count;
}

function hashTable(conn, table, order, cols, utf8) {
  for (const tagged of [false, true]) {
    const rows = crypto.createHash('sha256');
    let count;
    try {
      count = hashRows(conn, table, order, rowSql(cols, JSON1_FORMAT, tagged), rows, utf8);
    } catch (e) {
      if (tagged || !BLOB_STOPS.some((w) => String(e.message).includes(w))) throw e;
      continue;
    }
    return [count, `${tagged ? 'tagged ' : 'plain '}${rows.digest('hex')}`];
  }
  throw new Error('unreachable: tagged rows never fail for a BLOB');
}

/** The sqlite3 CLI's ieee754_to_blob (json-2 writes a REAL as its hex): 8 bytes, big-endian. */
function ieee754ToBlob(value) {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleBE(value);
  return bytes;
}

/** json-2: every line written by SQLite from ops/engine.py's own plan; rows per table. */
function describeStream(conn, digest, utf8) {
  if (!HASH_SQL) throw new EngineError('this engine.js was not shipped with its hash SQL (ops/node.py)');
  let registered = false; // once per connection: SQLite refuses to replace a running function
  try { registered = conn.get(HASH_SQL.probe)[0] === 1; } catch (e) { registered = false; }
  if (!registered) conn.fn('ieee754_to_blob', ieee754ToBlob);
  const blob = (expr) => (utf8 ? `CAST((${expr}) AS BLOB)` : `(${expr})`);
  const newline = Buffer.from('\n');
  const feed = (line) => { digest.update(bytesOf(line)); digest.update(newline); };
  for (const statement of HASH_SQL.head) {
    for (const [line] of conn.iterate(statement)) feed(line); // schema text: valid UTF-8
  }
  const counts = {};
  for (const [head, q, key, rid, rowSqlText] of conn.all(`SELECT ${blob('head')}, q, key, rid, row_sql FROM (${HASH_SQL.plan})`)) {
    feed(head);
    const sqlText = key === 'rowid'
      ? `SELECT ${blob(rowSqlText)} FROM ${q} ORDER BY ${rid}`
      : `SELECT ${blob('v')} FROM (SELECT ${rowSqlText} AS v FROM ${q}) ORDER BY v`;
    let count = 0;
    for (const [line] of conn.iterate(sqlText)) { feed(line); count += 1; }
    const name = JSON.parse(bytesOf(head).toString('utf8').slice(1))[0];
    if (name !== 'sqlite_sequence') counts[name] = count;
  }
  return counts;
}

/** (rows per table, content hash, its format) in one read transaction: ops/engine.py's
 * describe(), byte for byte. */
function describe(conn, fmt = null, begun = false) {
  if (fmt !== null && !CONTENT_FORMATS.includes(fmt)) throw new EngineError(`unknown content hash format ${pyRepr(fmt)}`, 'verify_failed');
  const digest = crypto.createHash('sha256');
  const counts = {};
  if (!begun) conn.exec('BEGIN');
  try {
    const best = bestFormat(conn);
    if ((fmt === CONTENT_FORMAT || fmt === JSON1_FORMAT) && best !== CONTENT_FORMAT) {
      throw new EngineError(`SQLite ${sql().sqliteVersion} here has no JSON functions: it cannot compute a ${fmt} content hash`, 'verify_failed');
    }
    fmt = fmt || best;
    const utf8 = String(conn.get('PRAGMA encoding')[0]).toUpperCase() === 'UTF-8';
    if (fmt === CONTENT_FORMAT) return { tables: describeStream(conn, digest, utf8), content_sha256: digest.digest('hex'), content_format: fmt };
    const tables = userTables(conn).map((t) => {
      const cols = columns(conn, t);
      return [t, rowOrder(conn, t, cols), cols];
    });
    const schema = "quote(type) || ',' || quote(name) || ',' || quote(tbl_name) || ',' || quote(sql)";
    for (const [line] of conn.iterate(`SELECT ${utf8 ? `CAST((${schema}) AS BLOB)` : schema} FROM sqlite_master `
        + "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name")) {
      digest.update(Buffer.concat([Buffer.from('S'), bytesOf(line), Buffer.from('\n')]));
    }
    for (const [table, order, cols] of tables) {
      const name = Buffer.from(table, 'utf8');
      if (fmt === LEGACY_FORMAT) {
        digest.update(Buffer.concat([Buffer.from('T'), name, Buffer.from('\n')]));
        counts[table] = hashRows(conn, table, order, rowSql(cols, LEGACY_FORMAT), digest, utf8);
        continue;
      }
      const [count, line] = hashTable(conn, table, order, cols, utf8);
      counts[table] = count;
      digest.update(Buffer.concat([Buffer.from('T'), name, Buffer.from(` ${line}\n`)]));
    }
  } finally {
    conn.exec('COMMIT');
  }
  return { tables: counts, content_sha256: digest.digest('hex'), content_format: fmt };
}

function describeFile(file, { live = false, fmt = null } = {}) {
  const conn = openDb(file, { live });
  try {
    return describe(conn, fmt);
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(`cannot read ${file}: ${firstLine(e.message)}`, 'corrupt');
  } finally {
    conn.close();
  }
}

function countRows(file, { live = false } = {}) {
  const conn = openDb(file, { live });
  try {
    const counts = {};
    for (const t of userTables(conn)) counts[t] = Number(conn.get(`SELECT count(*) FROM ${quoteId(t)}`)[0]);
    return counts;
  } catch (e) {
    throw new EngineError(`cannot read ${file}: ${firstLine(e.message)}`, 'corrupt');
  } finally {
    conn.close();
  }
}

function readDrillRecord(file) {
  const manifestPath = sidecars(file)[1];
  if (!lexists(manifestPath)) return {};
  const raw = readSmall(manifestPath, RECORD_LIMIT);
  const base = path.basename(manifestPath);
  if (raw === null) throw new EngineError(`${base} is not a regular file of at most ${RECORD_LIMIT} bytes`, 'verify_failed');
  let data;
  try {
    const text = strictText(raw, 'utf-8');
    if (text === null) throw new Error('not UTF-8');
    data = JSON.parse(text);
  } catch (e) {
    throw new EngineError(`${base} is not readable JSON (${e.message})`, 'verify_failed');
  }
  return checkedManifest(data, base);
}

function checkedManifest(raw, what) {
  if (!isObject(raw)) throw new EngineError(`${what} is not a JSON object`, 'verify_failed');
  const tables = raw.tables === undefined ? null : raw.tables;
  const content = raw.content_sha256 === undefined ? null : raw.content_sha256;
  let fmt = raw.content_format === undefined ? null : raw.content_format;
  if (tables === null && content === null) return {};
  if (!isObject(tables) || !Object.values(tables).every((v) => Number.isInteger(v) && v >= 0)) {
    throw new EngineError(`${what}: \`tables\` must map table names to row counts`, 'verify_failed');
  }
  if (content === null && 'content_sha256' in raw && fmt === null) return { tables, content_sha256: null, content_format: null };
  if (!isSha256(content)) throw new EngineError(`${what}: \`content_sha256\` must be 64 hex digits`, 'verify_failed');
  fmt = fmt === null ? LEGACY_FORMAT : fmt;
  if (!CONTENT_FORMATS.includes(fmt)) throw new EngineError(`${what}: \`content_format\` must be one of ${CONTENT_FORMATS.join(', ')}`, 'verify_failed');
  const found = { tables, content_sha256: content, content_format: fmt };
  if (typeof raw.sqlite_version === 'string' && /^[0-9]{1,3}(\.[0-9]{1,3}){1,3}$/.test(raw.sqlite_version)) found.sqlite_version = raw.sqlite_version;
  return found;
}

function differences(recorded, tables, content, restored = 'restored', side = 'recorded') {
  const found = [];
  const names = [...new Set([...Object.keys(recorded.tables), ...Object.keys(tables)])].sort();
  for (const t of names) {
    const want = t in recorded.tables ? recorded.tables[t] : null;
    const got = t in tables ? tables[t] : null;
    if (want !== got) found.push(`table ${t}: ${side} ${want !== null ? want : 'absent'} rows, ${restored} ${got !== null ? got : 'absent'}`);
  }
  if (recorded.content_sha256 !== null && recorded.content_sha256 !== content) {
    const version = recorded.sqlite_version;
    const other = version && version !== sql().sqliteVersion
      ? ` (recorded with SQLite ${version}, compared with ${sql().sqliteVersion})` : '';
    found.push(`content hash: ${side} ${recorded.content_sha256.slice(0, 12)}${ELLIPSIS}, ${restored} ${String(content).slice(0, 12)}${ELLIPSIS}${other}`);
  }
  return found;
}

// ------------------------------------------------------------------ restore

/** Copy ``backup`` into ``target`` through SQLite's backup API (one transaction on the
 * target: a stale -wal can never be replayed over it); gives up after ``busyTimeout``
 * seconds of the target being locked, having changed nothing. */
async function copyInto(backup, target, busyTimeout, what, onLocked = null) {
  const src = openDb(backup);
  const deadline = Date.now() + busyTimeout * 1000;
  let last = null;
  const started = Date.now();
  try {
    const locked = `the live database ${target} stayed locked for ${busyTimeout}s; nothing was changed`;
    await backupAll(src, target, (total, remaining) => {
      // a step has run, so the copy holds the target's write lock until it commits (the
      // binding calls this only once it knows the page count): nothing else commits now
      if (last === null && onLocked) onLocked();
      if (remaining === last) { // no page moved: the target is busy
        if (Date.now() > deadline) throw new EngineError(locked, 'timeout');
        sleep(50);
      }
      last = remaining;
      return total || STEP_PAGES;
    }, deadline, locked);
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(`${what} into ${target} failed (nothing was changed): ${firstLine(e.message)}`);
  } finally {
    src.close();
  }
  return round3((Date.now() - started) / 1000);
}

function livePages(live) { // engine.py's live_pages: the live database's page size and journal mode
  const conn = openDb(live, { live: true });
  try {
    return { pageSize: Number(conn.get('PRAGMA page_size')[0]), mode: String(conn.get('PRAGMA journal_mode')[0]) };
  } finally {
    conn.close();
  }
}

function checkPageSizes(backup, live) {
  let pages;
  try {
    pages = livePages(live);
  } catch (e) {
    throw new EngineError(`cannot read the live database ${live}: ${firstLine(e.message)}`, 'corrupt');
  }
  const backupSize = readPageSize(backup);
  if (pages.mode === 'wal' && backupSize !== pages.pageSize) {
    throw new EngineError(`the backup's page size (${backupSize}) differs from the live database's `
      + `(${pages.pageSize}); SQLite cannot restore it into a WAL database. Nothing was changed`, 'usage');
  }
}

function chosenBackup(dir, which, check) {
  const chosen = resolveBackup(dir, which)[0];
  const verdict = verifyBackup(chosen.path, check);
  if (!verdict.ok) {
    throw new EngineError(`backup ${chosen.name} failed verification, nothing was changed: ${verdict.problems[0]}`, 'verify_failed');
  }
  return [chosen, verdict];
}

/** A restore's dry run (engine.py's restore_verified): the chosen backup verified as the
 * restore verifies it, its page size against the live database's; no lock, nothing written. */
function restoreVerified(live, dir, which, check) {
  const [state] = liveState(live);
  const [chosen, verdict] = chosenBackup(dir, which, check);
  if (state === 'ok') checkPageSizes(chosen.path, live);
  return { backup: chosen.name, backup_sha256: verdict.sha256, created: chosen.created, check, live_state: state };
}

/**
 * The restore, with the same rules as the other engines: both locks (.restore.lock, and the
 * folder's backup lock from the check to the end, so no retention removes the chosen backup),
 * verify, safety backup, copy through the backup API, then the proof: the live database
 * compared with the backup it came from (check, row counts, content hash, both sides now).
 */
async function restoreDatabase(live, dir, which, { check, busyTimeout, lockWait, contentHash, appStopped }) {
  const [state, why] = liveState(live);
  if (state !== 'ok' && !appStopped) {
    throw new EngineError(`the live database ${live} is ${state} (${why}): restoring it needs the app `
      + `stopped, so nothing writes while the file is replaced; ${REMOTE_HOW}. Nothing was changed`, 'usage');
  }
  prepareDir(dir);
  const started = Date.now();
  return withLock(path.join(dir, RESTORE_LOCK), lockWait, 'another restore',
    () => withLock(path.join(dir, LOCK_NAME), lockWait, 'another backup', async () => {
      const [chosen, verdict] = chosenBackup(dir, which, check);
      if (state !== 'ok') return replaceBrokenLive(chosen, verdict, live, state, why, check, started);
      checkPageSizes(chosen.path, live);
      let safety;
      try {
        safety = await backupLocked(live, dir, {
          check, timeout: null, contentHash, restore: { when: iso(new Date()), backup: chosen.name },
        });
      } catch (e) { // engine.live_failed_check: quick_check passed, the full check did not
        const problems = e instanceof EngineError && e.kind === 'verify_failed' ? checkLive(live, check) : [];
        if (!problems.length) throw e;
        const found = `${check}_check: ${problems[0]}`;
        if (!appStopped) {
          throw new EngineError(`the live database ${live} is corrupt (${found}): restoring it needs the app `
            + `stopped, so nothing writes while the file is replaced; ${REMOTE_HOW}. Nothing was changed`, 'usage');
        }
        return replaceBrokenLive(chosen, verdict, live, 'corrupt', found, check, started);
      }
      process.stdout.write(`__OPS_ENTRY__ safety ${safety.name}\n`); // named even if killed later
      let seconds;
      const watcher = liveWatcher(live);
      try {
        seconds = await copyInto(chosen.path, live, busyTimeout, 'restore', watcher.locked);
      } catch (e) {
        watcher.close();
        throw new EngineError(`${e.message} (safety backup ${safety.name} was made first)`, e.kind || 'error');
      }
      const snapshot = watcher.read(); // first: the live database as the copy left it
      const inputs = proofInputs(chosen.path, live, check, safety, snapshot);
      return {
        backup: chosen.name, backup_sha256: verdict.sha256, created: chosen.created,
        safety_backup: safety, tables_before: safety.tables, tables_after: inputs.tables,
        check, proof_inputs: inputs,
        restore_seconds: seconds, seconds: round3((Date.now() - started) / 1000),
      };
    }));
}

/** The safety backup's content hash in ``fmt``: its record's if it has one in that format
 * (old records), else hashed now from the file (engine.py's content_sha256_of; records
 * hold none since issue 21); null if it cannot be read. */
function safetyContent(safety, fmt) {
  if (!safety || !fmt) return null;
  if (safety.content_sha256 && safety.content_format === fmt) return safety.content_sha256;
  try {
    return describeFile(safety.path, { fmt }).content_sha256;
  } catch (e) { // unreadable or gone: the proof only loses `holds: safety`
    return null;
  }
}

/**
 * The proof's inputs: the live database read right after the copy, the backup hashed now
 * in the same format, the safety backup's hash; ops/engine.py's judge_proof judges them on
 * the toolkit's side (one rule for every engine).
 */
function proofInputs(backup, live, check, safety = null, snapshot = null) {
  const inputs = {
    check, check_problems: [], tables: {}, backup_tables: {},
    content_sha256: null, backup_content_sha256: null, content_format: null,
    safety_sha256: null, app_wrote: null, error: null,
  };
  try {
    const got = snapshot || describeFile(live, { live: true });
    if (got.error) throw new EngineError(got.error);
    inputs.check_problems = checkLive(live, check);
    const want = describeFile(backup, { fmt: got.content_format });
    Object.assign(inputs, {
      tables: got.tables, content_sha256: got.content_sha256, content_format: got.content_format,
      backup_tables: want.tables, backup_content_sha256: want.content_sha256,
      safety_sha256: safetyContent(safety, got.content_format),
      app_wrote: typeof got.app_wrote === 'boolean' ? got.app_wrote : null,
    });
  } catch (e) {
    inputs.error = `cannot read the live database after the restore: ${e.message}`;
    inputs.check_problems = checkLive(live, check);
  }
  return inputs;
}

/**
 * A connection to the live database opened before the copy, so that the read right after
 * it costs no open: the copy's commit resolves its promise, and this reads in the same
 * turn, before the app's next write can usually get in (its busy handler is asleep).
 *
 * It also says whether the app committed between the copy and that read (``app_wrote``, as
 * engine.py's restore_live does). engine.py asks ``PRAGMA data_version`` on the connection
 * that made the copy; here the binding's backup() copies on a connection of its own, which
 * that pragma would count as another writer. So the commits are counted instead
 * (walCommits): once when the copy holds the write lock (``locked``, from copyInto: the
 * app's commits while the copy waited for that lock are overwritten, and not counted), and
 * again when the proof's read has begun. The copy is one commit; any more are the app's.
 * Unknown (null) when the live database is not in WAL mode or the count was never taken.
 */
function liveWatcher(live) {
  const conn = openDb(live, { live: true });
  let wal = false;
  let before = null;
  try {
    wal = String(conn.get('PRAGMA journal_mode')[0]).toLowerCase() === 'wal'; // opens the -shm
  } catch (e) { /* unreadable: the proof's read says why */ }
  return {
    locked() { before = wal ? walCommits(live) : null; },
    read() {
      try {
        conn.exec('BEGIN; SELECT count(*) FROM sqlite_master'); // the snapshot starts here
        const after = walCommits(live);
        const got = describe(conn, null, true);
        got.app_wrote = before === null || after === null ? null : ((after - before) >>> 0) !== 1;
        return got;
      } catch (e) {
        return { error: e.message };
      } finally {
        conn.close();
      }
    },
    close() { try { conn.close(); } catch (e) { /* closed */ } },
  };
}

const SHM_FDS = new Map();
const WAL_INDEX_VERSION = 3007000;

/**
 * How many transactions have committed to the WAL database ``live``: its wal-index
 * header's iChange, which SQLite adds one to at every commit, whichever connection makes
 * it (wal.c, walFrames). Null when it cannot be read: no -shm (not WAL), or a header that
 * was being rewritten at every try (its two copies differ). The -shm is read as a file,
 * in this machine's byte order, as SQLite keeps it; the descriptor is never closed,
 * because closing any descriptor of a file drops every POSIX lock this process holds on
 * it, and the watcher's connection holds its read lock on the -shm that way.
 */
function walCommits(live) {
  let name;
  try {
    name = `${fs.realpathSync(live)}-shm`; // SQLite names it after the file a symlink leads to
  } catch (e) {
    return null;
  }
  if (!SHM_FDS.has(name)) {
    try {
      SHM_FDS.set(name, fs.openSync(name, READ_SAFE));
    } catch (e) {
      return null;
    }
  }
  const header = Buffer.alloc(96);
  const read = os.endianness() === 'LE' ? (at) => header.readUInt32LE(at) : (at) => header.readUInt32BE(at);
  try {
    for (let tries = 0; tries < 100; tries += 1) {
      if (fs.readSync(SHM_FDS.get(name), header, 0, 96, 0) !== 96) return null;
      if (header.subarray(0, 48).equals(header.subarray(48)) && read(0) === WAL_INDEX_VERSION
          && header[12] === 1) return read(8);
    }
  } catch (e) { /* unreadable (an I/O error): unknown, never the copy's failure */ }
  return null;
}

// ------------------------------------------------------------------ a corrupt or missing live database
// ops/engine.py's live_state, move_aside, place_restored and replace_broken_live.

const REMOTE_HOW = 'stop it (on Fly: invoke emergency.stop; on an SSH host: restore with --app-stopped)';
const SIDE_FILES = ['-wal', '-shm', '-journal'];

function liveState(live) {
  if (!lexists(live)) return ['missing', 'no file has that name'];
  if (fs.lstatSync(live).isSymbolicLink() && !fs.existsSync(live)) {
    throw new EngineError(`database ${live} is a symlink to nothing; nothing was changed`, 'usage');
  }
  try {
    checkSqliteFile(live, 'database');
  } catch (e) {
    if (!(e instanceof EngineError) || e.kind !== 'corrupt') throw e;
    return ['corrupt', 'not a SQLite database'];  // engine.py's NOT_SQLITE_WHY: the path once
  }
  const problems = checkLive(live, 'quick');
  return problems.length ? ['corrupt', `quick_check: ${problems[0]}`] : ['ok', ''];
}

/** engine.move_aside: a corrupt database (label 'corrupt') or a missing one's leftover
 * -wal/-shm/-journal (label 'stale': SQLite would replay a stale -wal over the backup). */
function moveAside(live, label = 'corrupt') {
  const stamp = `${iso(new Date()).slice(0, 19).replace(/:/g, '-')}Z`;
  const aside = `${live}.${label}-${stamp}`;
  const moved = [];
  for (const suffix of [...SIDE_FILES, '']) {
    const src = `${live}${suffix}`;
    const dst = `${aside}${suffix}`;
    if (!lexists(src)) continue;
    try {
      fs.linkSync(src, dst);
      fs.unlinkSync(src);
    } catch (e) {
      throw new EngineError(`cannot move ${src} aside to ${path.basename(dst)}: ${e.message}`);
    }
    moved.push(dst);
  }
  fsyncPath(path.dirname(live));
  const left = [...SIDE_FILES, ''].map((x) => `${live}${x}`).filter(lexists);
  if (left.length) {
    throw new EngineError(`${left.join(', ')} appeared while moving the ${label} files aside: `
      + 'is the app still running? Nothing was restored');
  }
  return moved;
}

async function placeRestored(backup, live) {
  const tmp = path.join(path.dirname(live), `${TMP_PREFIX}restore-${path.basename(live)}.${process.pid}`);
  unlinkAll(['', ...SIDE_FILES].map((x) => `${tmp}${x}`));  // a dead run's of this pid: we hold the lock
  try {
    fs.closeSync(fs.openSync(tmp, NEW_FILE, 0o600));
    await copyInto(backup, tmp, 10, 'restore');
    const conn = sql().open(tmp, { readonly: false });
    try { conn.all('PRAGMA journal_mode = wal'); } finally { conn.close(); }
    fsyncPath(tmp);
    try {
      fs.linkSync(tmp, live);
    } catch (e) {
      if (e.code === 'EEXIST') {
        throw new EngineError(`${live} appeared while the backup was being placed there: is the app `
          + 'still running? Nothing was replaced');
      }
      throw e;
    }
    fsyncPath(path.dirname(live));
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(`cannot place the backup at ${live}: ${e.message}`);
  } finally {
    unlinkAll(['', ...SIDE_FILES].map((x) => `${tmp}${x}`));
  }
}

async function replaceBrokenLive(chosen, verdict, live, state, why, check, started) {
  const moved = moveAside(live, state === 'corrupt' ? 'corrupt' : 'stale');
  const begun = Date.now();
  await placeRestored(chosen.path, live);
  const seconds = round3((Date.now() - begun) / 1000);
  const inputs = proofInputs(chosen.path, live, check);
  return {
    backup: chosen.name, backup_sha256: verdict.sha256, created: chosen.created,
    live_state: state, live_problem: why, moved_aside: moved, safety_backup: null,
    tables_before: null, tables_after: inputs.tables, check, proof_inputs: inputs,
    restore_seconds: seconds, seconds: round3((Date.now() - started) / 1000),
  };
}

/** After a restore whose engine was killed: which content the live database holds. */
function liveHolds(live, backup, safety) {
  const got = describeFile(live, { live: true });
  const want = describeFile(backup, { fmt: got.content_format });
  const safetyHash = safety ? describeFile(safety, { fmt: got.content_format }).content_sha256 : null;
  let holds = got.content_sha256 === want.content_sha256 ? 'backup' : 'other';
  if (holds === 'other' && safetyHash !== null && safetyHash === got.content_sha256) holds = 'safety';
  // held_backup_before as engine.py's judge_proof says it: the safety backup holds the
  // backup's content (a retried restore's lookup of the data from before asks this)
  return { holds, content_sha256: got.content_sha256, backup_content_sha256: want.content_sha256, content_format: got.content_format,
    held_backup_before: safetyHash !== null && safetyHash === want.content_sha256 };
}

/** engine.py's same_content: does safety backup ``safety`` hold ``backup``'s content (both
 * files hashed, no live database, no integrity check). */
function sameContent(backup, safety) {
  const want = describeFile(backup);
  const other = describeFile(safety, { fmt: want.content_format }).content_sha256;
  return { backup_content_sha256: want.content_sha256, safety_content_sha256: other,
    content_format: want.content_format,
    held_backup_before: Boolean(want.content_sha256) && want.content_sha256 === other };
}

function liveAndRecordedCounts(live, dir, name) {
  let recorded;
  try {
    recorded = readDrillRecord(path.join(dir, checkName(name))).tables;
  } catch (e) {
    if (!(e instanceof EngineError) || e.kind === 'usage') throw e;
    recorded = null;
  }
  const backup = recorded === undefined ? null : recorded;
  refuseOtherNames(live);  // refused before the question, as the restore would refuse it
  let counted;
  try {
    counted = { live: countRows(live, { live: true }), backup };
  } catch (e) { // missing or not a database: say which, so the restore refuses before asking
    const [state, why] = liveState(live);
    if (state === 'ok') throw e;
    return { live: null, backup, live_state: state, live_problem: why };
  }
  try { // restore --from judges its file by them before its upload (engine.py's counts)
    const pages = livePages(live);
    Object.assign(counted, { live_page_size: pages.pageSize, live_journal_mode: pages.mode });
  } catch (e) { /* the counts stand without them */ }
  return counted;
}

// The schema as the data guard compares it: the python engine's SCHEMA_SQL, the same text.
const SCHEMA_SQL = "SELECT type || ' ' || name AS entry FROM sqlite_master WHERE type IN ('table', 'index', "
  + "'trigger', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' UNION ALL "
  + "SELECT 'column ' || m.name || '.' || p.name FROM sqlite_master AS m JOIN "
  + "pragma_table_info(m.name) AS p WHERE m.type = 'table' AND m.name NOT LIKE "
  + "'sqlite\\_%' ESCAPE '\\' AND coalesce(m.sql, '') NOT LIKE 'CREATE VIRTUAL%' ORDER BY 1";

function schemaOf(file, { live = false } = {}) {
  const conn = openDb(file, { live });
  try {
    return conn.all(SCHEMA_SQL).map((r) => r[0]);
  } catch (e) {
    throw new EngineError(`cannot read ${file}: ${firstLine(e.message)}`, 'corrupt');
  } finally {
    conn.close();
  }
}

// The data guard's two sides (engine.py's data_shape): recorded counts, else counted from
// the backup file once its SHA-256 matches its record.
function dataShape(live, dir, name) {
  const file = path.join(dir, checkName(name));
  checkSqliteFile(file, 'backup');
  let recorded;
  try {
    recorded = readDrillRecord(file).tables;
  } catch (e) {
    if (!(e instanceof EngineError) || e.kind === 'usage') throw e;
    recorded = undefined;
  }
  if (recorded === undefined || recorded === null) {
    const records = recordedSha256s(file);
    const problems = Object.keys(records).length
      ? checksumProblems(records, sha256File(file)) : ['no recorded SHA-256 to check it against'];
    if (problems.length) throw new EngineError(`backup ${name}: ${problems[0]}`, 'verify_failed');
  }
  const known = recorded !== undefined && recorded !== null;
  return {
    live: countRows(live, { live: true }), live_schema: schemaOf(live, { live: true }),
    backup: known ? recorded : countRows(file), backup_schema: schemaOf(file),
    source: known ? 'recorded' : 'computed',
  };
}

// ------------------------------------------------------------------ drill

async function drillBackup(file, { check, scratchDir }) {
  checkSqliteFile(file, 'backup');
  const problems = [];
  const recordedSha = readRecordedSha256(file);
  const digest = sha256File(file);
  if (recordedSha && recordedSha !== digest) {
    problems.push(`SHA-256 mismatch: recorded ${recordedSha.slice(0, 12)}${ELLIPSIS}, file has ${digest.slice(0, 12)}${ELLIPSIS}`);
  }
  let recorded;
  try {
    recorded = readDrillRecord(file);
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    recorded = {};
    problems.push(e.message);
  }
  const result = {
    name: path.basename(file), ok: false, restorable: false, seconds: 0.0, check, sha256: digest,
    recorded: Object.keys(recorded).length > 0, recorded_content: Boolean(recorded.content_sha256),
    tables: {}, content_sha256: null, content_format: null, backup_content_sha256: null,
    differences: [], problems,
  };
  let now;
  const scratch = fs.mkdtempSync(path.join(scratchDir, '.drill-'));
  try {
    const target = path.join(scratch, 'restored.db');
    const started = Date.now();
    try {
      await copyInto(file, target, 10, 'restore');
    } catch (e) {
      problems.push(e.message);
      return result;
    }
    result.seconds = round3((Date.now() - started) / 1000);
    const found = runCheck(target, check);
    if (found.length) {
      problems.push(`${check}_check of the restored copy: ${found[0]}`);
      return result;
    }
    result.restorable = true;
    try {
      // both sides now, in one format: the backup file (verified above) and its copy (issue 21)
      Object.assign(result, describeFile(target, { fmt: recorded.content_format || null }));
      now = describeFile(file, { fmt: result.content_format });
    } catch (e) {
      problems.push(e.message);
      return result;
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  result.backup_content_sha256 = now.content_sha256;
  result.differences = differences(now, result.tables, result.content_sha256, 'restored', 'backup file');
  if (Object.keys(recorded).length) result.differences.push(...differences(recorded, result.tables, result.content_sha256));
  result.ok = !problems.length && !result.differences.length;
  return result;
}

// ------------------------------------------------------------------ adopt (engine.py's adopt_backups)

/** Backups with no usable checksum record at all (the old npm scripts'), oldest first. */
function unrecorded(dir) {
  return listBackups(dir).filter((b) => !Object.keys(recordedSha256s(b.path)).length);
}

/**
 * Give backups made without records the records this tool writes, after a full
 * integrity_check: NAME.sha256 and NAME.json marked kind "adopted" with when and by whom.
 * Under the folder's backup lock; a sidecar taken in any form is refused, never written
 * through (publish links, never follows a symlink); dryRun checks and writes nothing.
 */
function adoptBackups(dir, which, { by, dryRun = false, lockWait = 0 }) {
  return withLock(path.join(dir, LOCK_NAME), lockWait, 'another backup', () => {
    let chosen;
    if (which === 'all') chosen = unrecorded(dir);
    else {
      checkName(which);
      chosen = listBackups(dir).filter((b) => b.name === which);
      if (!chosen.length) throw new EngineError(`no backup named ${which} in ${dir}`, 'not_found');
      if (Object.keys(recordedSha256s(chosen[0].path)).length) {
        throw new EngineError(`${which} already has a checksum record: nothing to adopt `
          + `(\`invoke backup.verify ${which}\` checks it)`, 'usage');
      }
    }
    return chosen.map((b) => adoptOne(b.path, by, dryRun));
  });
}

function adoptOne(file, by, dryRun) {
  const verdict = { name: path.basename(file), ok: false, adopted: false, sha256: null, problem: null };
  const taken = sidecars(file).filter(lexists).map((side) => path.basename(side));
  if (taken.length) {
    verdict.problem = `${taken.join(', ')} exists but is not a usable record: look at it and remove it by hand first`;
    return verdict;
  }
  const started = Date.now();
  let digest;
  let described;
  try {
    checkSqliteFile(file, 'backup');
    digest = sha256File(file);
    const problems = runCheck(file, 'integrity');
    if (problems.length) {
      verdict.problem = `integrity_check failed: ${problems[0]}`;
      return verdict;
    }
    // no content hash (issue 21): the drill and the restore's proof compute it
    described = { tables: countRows(file), content_sha256: null, content_format: null };
    if (sha256File(file) !== digest) {
      verdict.problem = 'the file changed while it was checked';
      return verdict;
    }
  } catch (e) {
    if (!(e instanceof EngineError)) throw e;
    verdict.problem = e.message;
    return verdict;
  }
  Object.assign(verdict, { ok: true, sha256: digest });
  if (dryRun) return verdict;
  const result = {
    name: verdict.name, path: file, created: iso(parseCreated(verdict.name)), size: fs.statSync(file).size,
    sha256: digest, check: 'integrity', seconds: round3((Date.now() - started) / 1000), source: '',
    strategy: 'adopted', sqlite_version: sql().sqliteVersion, host: os.hostname(),
    tables: described.tables, content_sha256: described.content_sha256,
    content_format: described.content_format, kind: 'adopted', restore: null,
    adopted: { when: iso(new Date()), by: String(by).slice(0, 200) },
  };
  try {
    publish(null, file, result);
  } catch (e) {
    Object.assign(verdict, { ok: false, problem: `cannot write its records: ${e instanceof EngineError ? e.message : firstLine(e.message)}` });
    return verdict;
  }
  verdict.adopted = true;
  return verdict;
}

// ------------------------------------------------------------------ entry point

const BOOLEAN_FLAGS = { '--no-content-hash': 'noContentHash', '--app-stopped': 'appStopped', '--live': 'live', '--dry-run': 'dryRun' };

function parseArgs(argv) {
  const [command, ...rest] = argv;
  const opts = { names: [] };
  for (let i = 0; i < rest.length; i += 1) {
    const arg = rest[i];
    if (BOOLEAN_FLAGS[arg]) opts[BOOLEAN_FLAGS[arg]] = true;
    else if (arg.startsWith('--')) {
      if (i + 1 >= rest.length) throw new EngineError(`${arg} needs a value`, 'usage');
      opts[arg.slice(2).replace(/-([a-z])/g, (_, ch) => ch.toUpperCase())] = rest[(i += 1)];
    } else opts.names.push(arg);
  }
  if (opts.check !== undefined && !CHECKS.includes(opts.check)) throw new EngineError(`unknown check ${pyRepr(opts.check)}: use one of ${CHECKS.join(', ')}`, 'usage');
  return [command, opts];
}

function need(opts, key) {
  if (opts[key] === undefined) throw new EngineError(`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is required`, 'usage');
  return opts[key];
}

async function run(argv) {
  const [command, o] = parseArgs(argv);
  const check = o.check || 'integrity';
  const num = (v, d) => (v === undefined ? d : Number(v));
  switch (command) {
    case 'probe':
      return { binding: sql().name, version: sql().version, sqlite_version: sql().sqliteVersion, node: process.versions.node, can_backup: sql().canBackup };
    case 'backup':
      return createBackup(need(o, 'db'), need(o, 'dir'), {
        check, timeout: num(o.timeout, null), lockWait: num(o.lockWait, 0), contentHash: !o.noContentHash,
      });
    case 'verify': {
      const dir = need(o, 'dir');
      if (o.names.length > 1) return o.names.map((n) => verifyNamed(dir, n, check)); // all: go on past one
      const chosen = o.names.length ? o.names.flatMap((n) => resolveBackup(dir, n)) : resolveBackup(dir, o.which || 'latest');
      return chosen.map((b) => verifyBackup(b.path, check));
    }
    case 'restore':
      if (o.dryRun) return restoreVerified(need(o, 'db'), need(o, 'dir'), o.which || 'latest', check);
      return restoreDatabase(need(o, 'db'), need(o, 'dir'), o.which || 'latest', {
        check, busyTimeout: num(o.busyTimeout, 10), lockWait: num(o.lockWait, 0),
        contentHash: !o.noContentHash, appStopped: Boolean(o.appStopped),
      });
    case 'holds': {
      const dir = need(o, 'dir');
      return liveHolds(need(o, 'db'), path.join(dir, checkName(need(o, 'which'))),
        o.safety ? path.join(dir, checkName(o.safety)) : null);
    }
    case 'same': {
      const dir = need(o, 'dir');
      return sameContent(path.join(dir, checkName(need(o, 'which'))),
        path.join(dir, checkName(need(o, 'safety'))));
    }
    case 'counts':
      return liveAndRecordedCounts(need(o, 'db'), need(o, 'dir'), o.which || 'latest');
    case 'shape':
      return dataShape(need(o, 'db'), need(o, 'dir'), need(o, 'which'));
    case 'drill': {
      const dir = need(o, 'dir');
      return drillBackup(resolveBackup(dir, o.which || 'latest')[0].path, { check, scratchDir: dir });
    }
    case 'adopt':
      return adoptBackups(need(o, 'dir'), need(o, 'which'), {
        by: need(o, 'by'), dryRun: Boolean(o.dryRun), lockWait: num(o.lockWait, 0),
      });
    case 'describe': // the content hash of one file (tests compare it with the python engine's)
      return describeFile(o.names[0], { live: Boolean(o.live), fmt: o.format || null });
    default:
      throw new EngineError(`unknown command ${pyRepr(String(command))}`, 'usage');
  }
}

async function main(argv) {
  try {
    const data = await run(argv);
    process.stdout.write(`${RESULT_MARK} ${asciiJson({ ok: true, data })}\n`);
    return 0;
  } catch (e) {
    const kind = e instanceof EngineError ? e.kind : 'error';
    const message = e instanceof EngineError ? e.message : `node engine failed: ${firstLine(e.stack || e.message)}`;
    process.stdout.write(`${RESULT_MARK} ${asciiJson({ ok: false, error: message, kind })}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
