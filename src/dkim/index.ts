export {
  createSigner,
  SIGNED_HEADERS,
  type Signer,
  type SignerOptions,
  type DkimKey,
  type DkimAlgorithm,
} from './signer.js';
export {
  generateKey,
  dnsRecord,
  parsePrivateKey,
  algorithmOf,
  type KeyAlgorithm,
  type GeneratedKey,
  type DkimDnsRecord,
} from './keys.js';
export { createKeyCache, type KeyCache, type KeyReloadFailure, type ReadKeyFile } from './key-cache.js';
export {
  canonicalizeHeaderRelaxed,
  canonicalizeBodyRelaxed,
  hashBodyRelaxed,
  splitMessage,
  type RawHeaderField,
  type SplitMessage,
} from './canonicalize.js';
export { createKeyRing, type KeyRing, type ActiveKeyRef } from './keyring.js';
export { resignMessage } from './resign.js';
export { sealKey, openSealedKey } from './seal.js';
