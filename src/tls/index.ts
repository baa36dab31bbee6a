export { loadTlsMaterial, type TlsMaterial, type TlsSettings } from './material.js';
