// A small Mach-O reader for the macOS checks of `npm run test:platforms`
// (nothing here runs macOS code): 64-bit thin files only, as cargo builds
// them. It reads the header, the load commands (linked dylibs, minimum macOS,
// code signature), the undefined symbols with the dylib each binds to, the
// export trie, and verifies a code signature the way the kernel does: every
// page hash of the CodeDirectory against the file, and every special slot
// against the blob it names.
import crypto from 'node:crypto';
import fs from 'node:fs';

const MH_MAGIC_64 = 0xfeedfacf;
export const CPU = { 0x01000007: 'x86_64', 0x0100000c: 'arm64' };
const FILETYPE = { 2: 'executable', 6: 'dylib', 8: 'bundle' };
const LC = {
  SYMTAB: 0x2,
  LOAD_DYLIB: 0xc,
  ID_DYLIB: 0xd,
  CODE_SIGNATURE: 0x1d,
  LAZY_LOAD_DYLIB: 0x20,
  DYLD_INFO: 0x22,
  DYLD_INFO_ONLY: 0x80000022,
  VERSION_MIN_MACOSX: 0x24,
  BUILD_VERSION: 0x32,
  LOAD_WEAK_DYLIB: 0x80000018,
  REEXPORT_DYLIB: 0x8000001f,
  LOAD_UPWARD_DYLIB: 0x80000023,
  DYLD_EXPORTS_TRIE: 0x80000033,
};
const DYLIB_CMDS = new Set([LC.LOAD_DYLIB, LC.LOAD_WEAK_DYLIB, LC.REEXPORT_DYLIB, LC.LAZY_LOAD_DYLIB,
  LC.LOAD_UPWARD_DYLIB]);

const version = (v) => `${v >>> 16}.${(v >>> 8) & 0xff}${v & 0xff ? `.${v & 0xff}` : ''}`;
const cstr = (buf, off, end = buf.length) => {
  const z = buf.indexOf(0, off);
  return buf.toString('utf8', off, z < 0 || z > end ? end : z);
};

function uleb(buf, off) {
  let v = 0;
  let shift = 0;
  let b;
  do {
    b = buf[off++];
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
  } while (b & 0x80);
  return [v, off];
}

/** Every name in an export trie. */
function exportTrie(buf, start, size) {
  const names = [];
  const seen = new Set();
  const walk = (node, prefix) => {
    if (seen.has(node) || node >= size) return;
    seen.add(node);
    let [info, p] = uleb(buf, start + node);
    if (info > 0) names.push(prefix);
    p += info;
    const children = buf[p++];
    for (let i = 0; i < children; i++) {
      const label = cstr(buf, p);
      p += Buffer.byteLength(label) + 1;
      let next;
      [next, p] = uleb(buf, p);
      walk(next, prefix + label);
    }
  };
  if (size > 0) walk(0, '');
  return names;
}

/** The code signature's CodeDirectory, and whether every hash it holds matches. */
function codeSignature(buf, dataoff, datasize) {
  const sb = buf.subarray(dataoff, dataoff + datasize);
  if (sb.readUInt32BE(0) !== 0xfade0cc0) return { error: `not an embedded signature (${sb.readUInt32BE(0).toString(16)})` };
  const count = sb.readUInt32BE(8);
  const blobs = new Map();
  for (let i = 0; i < count; i++) {
    const type = sb.readUInt32BE(12 + i * 8);
    const off = sb.readUInt32BE(16 + i * 8);
    blobs.set(type, sb.subarray(off, off + sb.readUInt32BE(off + 4)));
  }
  const cd = blobs.get(0);
  if (!cd || cd.readUInt32BE(0) !== 0xfade0c02) return { error: 'no CodeDirectory' };
  const flags = cd.readUInt32BE(12);
  const hashOffset = cd.readUInt32BE(16);
  const identOffset = cd.readUInt32BE(20);
  const nSpecial = cd.readUInt32BE(24);
  const nCode = cd.readUInt32BE(28);
  const codeLimit = cd.readUInt32BE(32);
  const hashSize = cd[36];
  const hashType = cd[37];
  const pageSize = 2 ** cd[39];
  const algo = { 1: 'sha1', 2: 'sha256' }[hashType];
  if (!algo) return { error: `unknown hash type ${hashType}` };
  const digest = (b) => crypto.createHash(algo).update(b).digest().subarray(0, hashSize);
  const badPages = [];
  for (let i = 0; i < nCode; i++) {
    const page = buf.subarray(i * pageSize, Math.min((i + 1) * pageSize, codeLimit));
    if (!digest(page).equals(cd.subarray(hashOffset + i * hashSize, hashOffset + (i + 1) * hashSize))) badPages.push(i);
  }
  // Special slot n (n = 1..nSpecial) sits n hashes before hashOffset; it is
  // the hash of the blob of type n (2 requirements, 5 entitlements, 7 DER
  // entitlements), or zeros when there is none.
  const badSpecial = [];
  for (let n = 1; n <= nSpecial; n++) {
    const want = cd.subarray(hashOffset - n * hashSize, hashOffset - (n - 1) * hashSize);
    if (want.every((b) => b === 0)) continue;
    const blob = blobs.get(n);
    if (!blob || !digest(blob).equals(want)) badSpecial.push(n);
  }
  return {
    identifier: cstr(cd, identOffset),
    adhoc: (flags & 0x2) !== 0,
    linkerSigned: (flags & 0x20000) !== 0,
    flags,
    hash: algo,
    pageSize,
    pages: nCode,
    codeLimit,
    coversWholeFile: codeLimit === dataoff,
    cms: blobs.has(0x10000) && blobs.get(0x10000).length > 8,
    badPages,
    badSpecial,
    valid: badPages.length === 0 && badSpecial.length === 0 && codeLimit === dataoff,
  };
}

/** What the macOS checks need from a thin 64-bit Mach-O file. */
export function readMachO(file) {
  const buf = fs.readFileSync(file);
  const magic = buf.readUInt32LE(0);
  if (magic !== MH_MAGIC_64) throw new Error(`${file}: not a 64-bit Mach-O file (magic ${magic.toString(16)})`);
  const out = {
    cpu: CPU[buf.readUInt32LE(4)] ?? `0x${buf.readUInt32LE(4).toString(16)}`,
    filetype: FILETYPE[buf.readUInt32LE(12)] ?? buf.readUInt32LE(12),
    dylibs: [],
    installName: null,
    minos: null,
    sdk: null,
    platform: null,
    undefined: [],
    exports: [],
    signature: null,
  };
  const ncmds = buf.readUInt32LE(16);
  let off = 32;
  let symtab;
  let trie;
  for (let i = 0; i < ncmds; i++) {
    const cmd = buf.readUInt32LE(off);
    const size = buf.readUInt32LE(off + 4);
    if (DYLIB_CMDS.has(cmd)) out.dylibs.push(cstr(buf, off + buf.readUInt32LE(off + 8), off + size));
    else if (cmd === LC.ID_DYLIB) out.installName = cstr(buf, off + buf.readUInt32LE(off + 8), off + size);
    else if (cmd === LC.BUILD_VERSION) {
      out.platform = buf.readUInt32LE(off + 8) === 1 ? 'macos' : buf.readUInt32LE(off + 8);
      out.minos = version(buf.readUInt32LE(off + 12));
      out.sdk = version(buf.readUInt32LE(off + 16));
    } else if (cmd === LC.VERSION_MIN_MACOSX) {
      out.platform = 'macos';
      out.minos = version(buf.readUInt32LE(off + 8));
      out.sdk = version(buf.readUInt32LE(off + 12));
    } else if (cmd === LC.SYMTAB) {
      symtab = { symoff: buf.readUInt32LE(off + 8), nsyms: buf.readUInt32LE(off + 12), stroff: buf.readUInt32LE(off + 16) };
    } else if (cmd === LC.DYLD_INFO || cmd === LC.DYLD_INFO_ONLY) {
      if (buf.readUInt32LE(off + 44)) trie = { off: buf.readUInt32LE(off + 40), size: buf.readUInt32LE(off + 44) };
    } else if (cmd === LC.DYLD_EXPORTS_TRIE) {
      trie = { off: buf.readUInt32LE(off + 8), size: buf.readUInt32LE(off + 12) };
    } else if (cmd === LC.CODE_SIGNATURE) {
      out.signature = codeSignature(buf, buf.readUInt32LE(off + 8), buf.readUInt32LE(off + 12));
    }
    off += size;
  }
  if (symtab) {
    for (let i = 0; i < symtab.nsyms; i++) {
      const e = symtab.symoff + i * 16;
      const type = buf[e + 4];
      if ((type & 0xe0) !== 0 || (type & 0x0e) !== 0 || (type & 0x01) === 0) continue; // stab, defined, or local
      const ordinal = (buf.readUInt16LE(e + 6) >> 8) & 0xff;
      const from = ordinal === 0 ? 'self' : ordinal === 0xfe ? 'dynamic lookup' : ordinal === 0xff ? 'executable'
        : out.dylibs[ordinal - 1] ?? `ordinal ${ordinal}`;
      out.undefined.push({ name: cstr(buf, symtab.stroff + buf.readUInt32LE(e)), from });
    }
  }
  if (trie) out.exports = exportTrie(buf, trie.off, trie.size);
  return out;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  for (const f of process.argv.slice(2)) {
    const m = readMachO(f);
    const bySource = {};
    for (const u of m.undefined) bySource[u.from] = (bySource[u.from] ?? 0) + 1;
    console.log(JSON.stringify({ file: f, ...m, undefined: bySource, exports: m.exports.length }, null, 2));
  }
}
