import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Every file below `dir`, at any depth. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

/** Files holding the bytes of `needle` in any letter case (ASCII). */
export function filesContaining(dirs: string[], needle: string): string[] {
  const lower = needle.toLowerCase();
  return dirs
    .flatMap(filesUnder)
    .filter((f) => readFileSync(f).toString('latin1').toLowerCase().includes(lower));
}

/**
 * The base64 forms of `text` as it shows inside a longer encoded run: one for each of the three
 * alignments, without the characters that depend on the bytes around it.
 */
export function base64Forms(text: string): string[] {
  return [0, 1, 2].map((k) => {
    const bytes = Buffer.concat([Buffer.alloc(k, 0x20), Buffer.from(text, 'utf8')]);
    const encoded = bytes.toString('base64');
    const skip = k === 0 ? 0 : k === 1 ? 2 : 3;
    return encoded.slice(skip, Math.floor(bytes.length / 3) * 4);
  });
}

/**
 * `address` and its local part as they may show in a file: plain (matched in any letter case),
 * base64 of its lower-case, upper-case and `extra` spellings, and quoted-printable / RFC 2047 Q.
 */
export function encodedForms(address: string, extra: readonly string[] = []): string[] {
  const local = address.slice(0, address.lastIndexOf('@'));
  const spellings = [...new Set([address.toLowerCase(), address.toUpperCase(), ...extra])];
  const qp = address.replace(/@/g, '=40');
  return [
    address,
    local,
    qp,
    qp.replace(/\./g, '=2E'),
    ...spellings.flatMap((s) => [...base64Forms(s), ...base64Forms(s.slice(0, s.lastIndexOf('@')))]),
  ];
}

/**
 * `address` as quoted-printable writes it with a soft line break at each position inside it,
 * with `@` plain or as `=40`.
 */
export function softBreakForms(address: string): string[] {
  return [address, address.replace(/@/g, '=40')].flatMap((a) =>
    Array.from({ length: a.length - 1 }, (_, k) => `${a.slice(0, k + 1)}=\r\n${a.slice(k + 1)}`),
  );
}

/** The files below `dirs`, each read once and lower-cased, for grepping many needles. */
export function readFilesLower(dirs: string[]): { readonly path: string; readonly text: string }[] {
  const read = (path: string): { path: string; text: string }[] => {
    try {
      if (statSync(path).isDirectory()) return readdirSync(path).flatMap((name) => read(join(path, name)));
      return [{ path, text: readFileSync(path).toString('latin1').toLowerCase() }];
    } catch {
      // Gone between the listing and the read (a log file rolled away, the SHM at close).
      return [];
    }
  };
  return dirs.flatMap(read);
}
