// @meno-realtime/client: the seed-000 client, and the envelope types of every dialect.
export * from './client.js';
export type * from './generated/common.js';
export type * from './generated/seed000.js';
export type * from './generated/nexus.js';
export type * from './generated/assistant.js';
