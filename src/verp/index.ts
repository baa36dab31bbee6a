export { createVerp, type Verp, type VerpOptions } from './verp.js';
