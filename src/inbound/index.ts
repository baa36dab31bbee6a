export {
  createInboundService,
  type InboundService,
  type InboundDeps,
  type InboundSettings,
} from './server.js';
export { handleInbound, type InboundTarget, type ReportDeps } from './reports.js';
