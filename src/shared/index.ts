export * from './errors.js';
export * from './smtp-reply.js';
export * from './address.js';
export * from './clock.js';
export * from './password.js';
export * from './transfer-encoding.js';
export * from './directory.js';
export * from './secret.js';
