import { readFileSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { ConfigError, errorMessage, makeDirectory } from '../shared/index.js';

/** A certificate chain and its key in PEM, ready for tls.createSecureContext. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** Where it came from, for logs. */
  readonly origin: 'configured' | 'self-signed';
}

export interface TlsSettings {
  readonly cert: string;
  readonly key: string;
}

const SELF_CERT = 'selfsigned-cert.pem';
const SELF_KEY = 'selfsigned-key.pem';

/**
 * Reads the configured certificate and key, or makes (once) and reuses a self-signed pair in
 * `<dataDir>/tls`. Throws ConfigError naming the key when a file is unreadable or not PEM.
 */
export async function loadTlsMaterial(
  settings: TlsSettings,
  dataDir: string,
  hostname: string,
): Promise<TlsMaterial> {
  if (settings.cert || settings.key) {
    if (!settings.cert || !settings.key) {
      throw new ConfigError('PETREL_CONFIG_INVALID', `tls: cert and key must be set together`);
    }
    const cert = readPem('tls.cert', settings.cert);
    const key = readPem('tls.key', settings.key);
    validatePair(cert, key);
    return { cert, key, origin: 'configured' };
  }
  const dir = join(dataDir, 'tls');
  const certPath = join(dir, SELF_CERT);
  const keyPath = join(dir, SELF_KEY);
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: readPem('tls.cert', certPath), key: readPem('tls.key', keyPath), origin: 'self-signed' };
  }
  makeDirectory(dir, 0o700);
  const notAfter = new Date();
  notAfter.setFullYear(notAfter.getFullYear() + 10);
  const pems = await generate([{ name: 'commonName', value: hostname }], {
    keySize: 2048,
    algorithm: 'sha256',
    notAfterDate: notAfter,
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] }],
  });
  // Written under temporary names and renamed, so a crash never leaves half a pair.
  writeFileSync(`${keyPath}.tmp`, pems.private, { mode: 0o600 });
  writeFileSync(`${certPath}.tmp`, pems.cert, { mode: 0o644 });
  renameSync(`${keyPath}.tmp`, keyPath);
  renameSync(`${certPath}.tmp`, certPath);
  return { cert: pems.cert, key: pems.private, origin: 'self-signed' };
}

function readPem(key: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `${key}: cannot read ${path}: ${errorMessage(err)}`);
  }
  if (!text.includes('-----BEGIN ')) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `${key}: ${path} is not a PEM file`);
  }
  return text;
}

function validatePair(cert: string, key: string): void {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `tls.cert: not a valid certificate: ${errorMessage(err)}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new ConfigError('PETREL_CONFIG_INVALID', `tls.key: not a valid private key: ${errorMessage(err)}`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError('PETREL_CONFIG_INVALID', 'tls.key: does not match the certificate in tls.cert');
  }
}
