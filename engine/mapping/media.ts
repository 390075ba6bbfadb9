// Inbound media: BSPs name a file by id; the host fetches it with the tenant's credentials. The
// mapping's `media` section says how, in at most two steps: a look-up request that yields the file's
// URL, then the download itself.
import { WabError } from './errors.js';
import type { Mapping } from './loader.js';
import { buildRequest, type HttpRequest } from './send.js';

export interface MediaDownload {
  url: string;
  headers: Record<string, string>;
}

function section(mapping: Mapping) {
  if (!mapping.media) throw new WabError('WAB_MAPPING_SCHEMA', `${mapping.name} declares no media section: inbound media ids cannot be fetched`, mapping.file);
  return mapping.media;
}

/** The look-up request for a media id, or undefined when the mapping downloads directly. */
export async function planMediaLookup(mapping: Mapping, mediaId: string, settings: Record<string, unknown>, token?: string): Promise<HttpRequest | undefined> {
  const media = section(mapping);
  return media.request ? buildRequest(media.request, { mediaId, settings, token }, 'media.request') : undefined;
}

/** Where to download the file from, given the look-up response body (when there was a look-up). */
export async function planMediaDownload(mapping: Mapping, mediaId: string, settings: Record<string, unknown>, lookupBody?: unknown, token?: string): Promise<MediaDownload> {
  const media = section(mapping);
  const input = { mediaId, settings, body: lookupBody, token };
  const url = media.downloadUrl ? await media.downloadUrl.evaluate(input) : undefined;
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
    throw new WabError('WAB_MAPPING_OUTPUT', `media.downloadUrl: must give an http(s) URL, got ${JSON.stringify(url)}`);
  }
  const headers: Record<string, string> = {};
  for (const [name, c] of media.downloadHeaders) {
    const v = await c.evaluate(input);
    if (v !== undefined && v !== null) headers[name] = String(v);
  }
  return { url, headers };
}
