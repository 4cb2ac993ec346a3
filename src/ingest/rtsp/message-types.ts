/**
 * RTSP 1.0 messages (RFC 2326): the shapes the parser yields and the serializers take, the header list they
 * share, and the constants both sides use.
 */

/** `ParseError.format` of RTSP errors. */
export const FORMAT = 'rtsp';

/** An ordered, case-insensitive header list; repeated names are kept (WWW-Authenticate: Digest + Basic). */
export class RtspHeaders {
  private readonly list: [string, string][] = [];

  /** @param init header name/value pairs, in order */
  constructor(init: Iterable<readonly [string, string]> | Readonly<Record<string, string>> = []) {
    const pairs = Symbol.iterator in init ? (init as Iterable<readonly [string, string]>) : Object.entries(init);
    for (const [k, v] of pairs) this.list.push([k, v]);
  }

  /** First value of `name`, or undefined. */
  get(name: string): string | undefined {
    const n = name.toLowerCase();
    return this.list.find(([k]) => k.toLowerCase() === n)?.[1];
  }

  /** Every value of `name`, in order. */
  getAll(name: string): string[] {
    const n = name.toLowerCase();
    return this.list.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Replaces every `name` header by one with `value` (appended at the end when new, else in the first place). */
  set(name: string, value: string): this {
    const n = name.toLowerCase();
    const i = this.list.findIndex(([k]) => k.toLowerCase() === n);
    if (i < 0) {
      this.list.push([name, value]);
      return this;
    }
    this.list[i] = [name, value];
    for (let j = this.list.length - 1; j > i; j--) if ((this.list[j] as [string, string])[0].toLowerCase() === n) this.list.splice(j, 1);
    return this;
  }

  /** Adds a header, keeping existing ones of the same name. */
  append(name: string, value: string): this {
    this.list.push([name, value]);
    return this;
  }

  delete(name: string): this {
    const n = name.toLowerCase();
    for (let j = this.list.length - 1; j >= 0; j--) if ((this.list[j] as [string, string])[0].toLowerCase() === n) this.list.splice(j, 1);
    return this;
  }

  /** The pairs in order. */
  entries(): readonly (readonly [string, string])[] {
    return this.list;
  }

  get size(): number {
    return this.list.length;
  }
}

/** A request. `body` is a view (or one joined copy when it spanned chunks); empty when there is none. */
export interface RtspRequest {
  kind: 'request';
  method: string;
  url: string;
  version: string;
  headers: RtspHeaders;
  body: Uint8Array;
}

/** A response. */
export interface RtspResponse {
  kind: 'response';
  version: string;
  status: number;
  reason: string;
  headers: RtspHeaders;
  body: Uint8Array;
}

/** A `$`-interleaved binary frame (RFC 2326 §10.12): RTP/RTCP over the RTSP connection. */
export interface RtspInterleavedFrame {
  kind: 'interleaved';
  /** 0..255, as negotiated by `Transport: interleaved=` */
  channel: number;
  /** the frame's bytes: a view of the pushed chunk, or one joined copy when it spanned chunks */
  data: Uint8Array;
}

/** What the parser yields. */
export type RtspMessage = RtspRequest | RtspResponse | RtspInterleavedFrame;

/** The empty body (shared, never written). */
export const EMPTY = new Uint8Array(0);
/** `$`, the first byte of an interleaved frame (RFC 2326 §10.12). */
export const DOLLAR = 0x24;
