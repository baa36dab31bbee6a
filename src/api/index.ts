export { createApi, type Api, type ApiDeps } from './router.js';
export type { ApiCaller, ApiScope, KeyVerifier } from './auth.js';
