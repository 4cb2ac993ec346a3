import { Message } from 'werift';

/**
 * A STUN Binding request as a browser sends it (RFC 8445 §7.1.2), built with werift's STUN encoder (an independent
 * implementation): USERNAME, PRIORITY, ICE-CONTROLLING, optionally USE-CANDIDATE, MESSAGE-INTEGRITY with `pwd`,
 * FINGERPRINT.
 */
export function bindingRequest(user: string, pwd: string, useCandidate: boolean, priority: number): Buffer {
  const m = new Message(1 /* BINDING */, 0 /* REQUEST */);
  m.setAttribute('USERNAME', user);
  m.setAttribute('PRIORITY', priority);
  m.setAttribute('ICE-CONTROLLING', BigInt('0x1122334455667788'));
  if (useCandidate) m.setAttribute('USE-CANDIDATE', null);
  m.addMessageIntegrity(Buffer.from(pwd));
  m.addFingerprint();
  return m.bytes;
}
