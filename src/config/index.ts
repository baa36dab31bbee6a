export {
  configSchema,
  type Config,
  type ShapingRuleConfig,
  type SubmissionConfig,
  type TlsConfig,
} from './schema.js';
export { loadShapingRules, readShapingRules, SHIPPED_SHAPING_RULES } from './shaping-rules.js';
export { loadConfig, parseConfig, type LoadedConfig, type ConfigSource } from './load.js';
export { parseDuration, parseSize, parseListen, parseCidr, ipInCidrs } from './units.js';
export type { ListenAddress, Cidr } from './units.js';
export { configReference } from './reference.js';
export { changedSettings } from './diff.js';
export { readMetricsToken, readSecretFile, readSpoolKey } from './secret-file.js';
