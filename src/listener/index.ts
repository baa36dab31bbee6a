export { GreetingServer } from './greeting.js';
export { PerIpLimit, armDataDeadline } from './limits.js';
