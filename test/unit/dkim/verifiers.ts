import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dkimVerify } from 'mailauth/lib/dkim/verify.js';
import type { DkimDnsRecord } from '../../../src/dkim/index.js';

const HELPER = fileURLToPath(new URL('../../helpers/dkim-verify.py', import.meta.url));
/** Debian's interpreter, where python3-dkim installs; pyenv shims earlier on PATH do not see it. */
const PYTHON = process.env['PETREL_PYTHON'] ?? '/usr/bin/python3';

/** Verdicts of mailauth 4, one per DKIM-Signature field, top first. */
export async function mailauthVerdicts(
  message: Buffer,
  records: readonly DkimDnsRecord[],
): Promise<string[]> {
  const byName = new Map(records.map((r) => [r.name.toLowerCase(), r.strings]));
  const result = await dkimVerify(message, {
    resolver: async (name: string) => {
      const strings = byName.get(name.toLowerCase().replace(/\.$/, ''));
      if (!strings) throw Object.assign(new Error(`no TXT for ${name}`), { code: 'ENOTFOUND' });
      return [[...strings]];
    },
  });
  return result.results.map((r) => r.status.result);
}

/** Whether dkimpy can be run here (Debian/Ubuntu: `apt-get install -y python3-dkim`). */
export function dkimpyAvailable(): boolean {
  try {
    execFileSync(PYTHON, ['-c', 'import dkim, nacl'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Verdicts of dkimpy, one per DKIM-Signature field, top first; DNS answered from `records`. */
export function dkimpyVerdicts(message: Buffer, records: readonly DkimDnsRecord[]): Promise<boolean[]> {
  const request = JSON.stringify({
    message: message.toString('base64'),
    records: Object.fromEntries(records.map((r) => [r.name, r.value])),
  });
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, [HELPER], { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dkimpy helper failed: ${stderr || err.message}`));
      else resolve((JSON.parse(stdout) as { results: boolean[] }).results);
    });
    child.stdin!.end(request);
  });
}
