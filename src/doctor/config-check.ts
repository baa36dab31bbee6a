import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from '../config/index.js';
import { errorMessage } from '../shared/index.js';
import { result, type CheckResult } from './types.js';

const DAY_MS = 86_400_000;

/** The configured certificate: readable, matching its key, valid for a while, naming the hostname. */
export function checkCertificate(
  config: Config,
  now: number = Date.now(),
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): CheckResult {
  const { cert: certPath, key: keyPath } = config.tls;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFile(certPath));
    if (!cert.checkPrivateKey(createPrivateKey(readFile(keyPath)))) {
      return result(
        'config',
        'fail',
        'tls',
        `[tls] key ${keyPath} does not belong to the certificate ${certPath}`,
        'point [tls] key at the private key of that certificate',
      );
    }
  } catch (err) {
    return result(
      'config',
      'fail',
      'tls',
      `[tls] cert/key cannot be used: ${errorMessage(err)}`,
      'point [tls] cert and key at readable PEM files',
    );
  }
  const validTo = Date.parse(cert.validTo);
  if (validTo <= now) {
    return result(
      'config',
      'fail',
      'tls',
      `certificate ${certPath} expired on ${new Date(validTo).toISOString()}`,
      'renew it, then reload Petrel (systemctl reload petrel)',
    );
  }
  if (validTo - now < 14 * DAY_MS) {
    return result(
      'config',
      'warn',
      'tls',
      `certificate ${certPath} expires on ${new Date(validTo).toISOString()}`,
      'renew it, then reload Petrel (systemctl reload petrel)',
    );
  }
  if (cert.checkHost(config.hostname) === undefined) {
    return result(
      'config',
      'warn',
      'tls',
      `certificate ${certPath} does not name ${config.hostname}; clients that verify will refuse it`,
      `get a certificate for ${config.hostname}`,
    );
  }
  return result(
    'config',
    'ok',
    'tls',
    `certificate for ${config.hostname} valid until ${new Date(validTo).toISOString()}`,
  );
}

/** Loads the configuration: the doctor's first check, since every other one reads it. */
export function checkConfig(load: () => { config: Config; origin: string }): {
  results: CheckResult[];
  config: Config | null;
} {
  let loaded: { config: Config; origin: string };
  try {
    loaded = load();
  } catch (err) {
    return {
      config: null,
      results: [
        result(
          'config',
          'fail',
          'config',
          errorMessage(err),
          'correct the key named above (config/petrel.toml documents every key); petrel config check validates',
        ),
      ],
    };
  }
  const { config, origin } = loaded;
  const out = [result('config', 'ok', origin, `config valid: ${origin}`)];
  if (!config.hostname.includes('.')) {
    out.push(
      result(
        'config',
        'warn',
        'hostname',
        `hostname "${config.hostname}" is not a fully-qualified name; receivers distrust such EHLO names`,
        'set hostname = "mta.example.com" (the name whose A record and PTR point at this host)',
      ),
    );
  }
  if (!config.tls.cert) {
    out.push(
      result(
        'config',
        'warn',
        'tls',
        'no [tls] cert: submission uses a self-signed certificate that clients will not trust',
        'set [tls] cert and key to a certificate for the hostname (e.g. from an ACME client)',
      ),
    );
  } else {
    out.push(checkCertificate(config));
  }
  return { results: out, config };
}
