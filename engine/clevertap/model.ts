// The one canonical shape every mapping sees, whatever spelling CleverTap used on the wire.
// docs/clevertap-model.md is the prose version of this file; keep them in step.

/** CleverTap's msgId `i|campaignID|batchID|j[|variant]`, split. Fields are absent when the msgId has fewer parts. */
export interface MsgIdParts {
  i?: string;
  campaignId?: string;
  batchId?: string;
  j?: string;
  variant?: string;
}

export interface TextParameter {
  type: 'text';
  text: string;
}

export type Header =
  | { type: 'text'; text?: string; parameters: TextParameter[] }
  | { type: 'image' | 'video' | 'audio'; mediaURL: string }
  | { type: 'file'; mediaURL: string; filename?: string }
  | { type: 'location'; latitude: string; longitude: string; name?: string; address?: string };

export interface Body {
  text?: string;
  parameters: TextParameter[];
}

export type ButtonSubType = 'dynamicUrl' | 'staticUrl' | 'quickReply' | 'callPhone' | 'copyCode';

/** A template button. Exactly the field that belongs to its subType is set (when CleverTap sent it). */
export interface Button {
  index: number;
  subType: ButtonSubType;
  text?: string; // CleverTap's buttonText
  urlSuffix?: string; // dynamicUrl
  url?: string; // staticUrl
  payload?: string; // quickReply
  phoneNumber?: string; // callPhone
  couponCode?: string; // copyCode
}

export interface Card {
  index: number;
  header?: Header;
  body?: Body;
  buttons: Button[];
}

export interface Template {
  name: string; // CleverTap calls it template.namespace
  languageCode: string; // as CleverTap sent it, e.g. "en(UK)"
  language: string; // normalized: "en", "en_GB", "pt_BR"
  header?: Header;
  body?: Body;
  footer?: { text: string };
  limitedTimeOffer?: { text?: string; expirationTimeMs?: number };
  buttons: Button[];
  carousel?: { cards: Card[] };
}

export type MessageType = 'template' | 'text' | 'image' | 'video' | 'audio' | 'file' | 'location';

export interface CanonicalMessage {
  payloadVersion: string; // always a string, e.g. "0.1"
  msgId: string;
  msgIdParts: MsgIdParts;
  to: string; // digits only, country code first, no "+"
  wabaNumber?: string; // as sent, without "+" and separators
  isTemplate: boolean;
  /** CleverTap's endpoint-validation payload: answered with success, never sent to the BSP. */
  isValidation: boolean;
  type: MessageType;
  template?: Template;
  text?: { body: string };
  image?: { mediaURL: string; caption?: string };
  video?: { mediaURL: string; caption?: string };
  audio?: { mediaURL: string };
  file?: { mediaURL: string; caption?: string; filename?: string };
  location?: { latitude: string; longitude: string };
  customProps?: Record<string, unknown>;
  /** Fields CleverTap sent that wabridge does not know, kept verbatim. */
  extra?: Record<string, unknown>;
}

/** One reason a CleverTap payload could not be understood. `code` is the CleverTap answer it deserves. */
export interface NormalizeIssue {
  path: string; // JSON path into the payload as sent, e.g. "components[2].header.image.mediaURL"
  message: string;
  code: 2001 | 2002 | 2004;
}

export type NormalizeResult =
  | { ok: true; message: CanonicalMessage }
  | { ok: false; issues: NormalizeIssue[] };
