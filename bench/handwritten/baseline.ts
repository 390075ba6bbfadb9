// The hand-written baseline under names that say what it is to the code comparing with it (tests
// included): the mapping it re-implements, its send and its webhook mapping.
export { BASELINE_MAPPING_DIR, metaSend as baselineSend, metaWebhookEvents as baselineWebhookEvents, type MetaSettings as BaselineSettings } from './meta-cloud.js';
