export { coveredBy, type Part } from './part.js';
export { createStorage, type Storage } from './storage.js';
export { createQueue, type Queue } from './queue.js';
export { createRetention } from './retention.js';
export { createHttp } from './http.js';
export { createWebhooks } from './webhooks.js';
export { createCertificates } from './certificates.js';
export { createInbound } from './inbound.js';
export { createSubmission } from './submission.js';
