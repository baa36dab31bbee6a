export { createHttpService, type HttpService, type HttpDeps } from './server.js';
