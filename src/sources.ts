import { log } from './log.js';
import type { SourceStarter, SourceHandle } from './media/bus/registry.js';
import { redactUrl } from './media/bus/registry.js';

/** A pull client for one URL scheme: it publishes into the registry with a session of protocol 'source'. */
export type SourceClientFactory = SourceStarter;

/**
 * Pull clients by URL scheme. Filled in as clients exist; a path whose scheme has no client logs why and stays
 * empty (readers get "not ready").
 */
export function sourceStarter(clients: Record<string, SourceClientFactory>): SourceStarter {
  return (path, url, registry): SourceHandle => {
    const scheme = url.slice(0, url.indexOf(':')).toLowerCase();
    const client = clients[scheme];
    if (!client) {
      log.error({ path, source: redactUrl(url) }, `no pull client for '${scheme}://' sources in this version`);
      return { close() {} };
    }
    return client(path, url, registry);
  };
}
