import { describe, expect, it } from 'vitest';
import { classifyReply, findReason, parseRules, RULES } from '../../../src/bounce/index.js';

const REPLY = /^([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3}) )?(.*)$/;

describe('bounce rules', () => {
  it('parses every rule and gives each at least one sample reply', () => {
    expect(RULES.length).toBeGreaterThan(20);
    for (const rule of RULES) expect(rule.samples.length, `rule on line ${rule.line}`).toBeGreaterThan(0);
  });

  for (const rule of RULES) {
    for (const sample of rule.samples) {
      it(`classifies "${sample.slice(0, 70)}" as ${rule.reason}`, () => {
        const m = REPLY.exec(sample);
        if (!m) {
          expect(findReason({ status: null, texts: [sample] })).toBe(rule.reason);
          return;
        }
        const code = Number(m[1]);
        const got = classifyReply(code, m[2] ?? null, m[3]!);
        expect(got.reason).toBe(rule.reason);
        expect(got.category).toBe(code >= 500 ? rule.category : 'soft');
      });
    }
  }

  it('rejects a malformed rule line at load time', () => {
    expect(() => parseRules('> 550 x\nno category here')).toThrow(/line 2/);
  });
});

describe('classifyReply', () => {
  it('reads a permanent unknown user as a hard bounce', () => {
    expect(classifyReply(550, '5.1.1', 'user unknown')).toEqual({
      category: 'hard',
      reason: 'userunknown',
      status: '5.1.1',
    });
  });

  it('reads a full mailbox as a soft bounce', () => {
    expect(classifyReply(452, '4.2.2', 'mailbox full')).toEqual({
      category: 'soft',
      reason: 'mailboxfull',
      status: '4.2.2',
    });
  });

  it('reads connection throttling as soft toomanyconn', () => {
    expect(classifyReply(421, null, 'too many connections')).toMatchObject({
      category: 'soft',
      reason: 'toomanyconn',
    });
  });

  it('never calls a temporary failure hard', () => {
    expect(classifyReply(450, '4.1.1', 'user unknown').category).toBe('soft');
  });

  it('finds an enhanced code at the start of the text', () => {
    expect(classifyReply(554, null, '5.7.1 Relay access denied')).toMatchObject({
      reason: 'norelaying',
      status: '5.7.1',
    });
  });

  it('treats an unknown user after DATA as a content filter', () => {
    expect(classifyReply(550, null, 'User unknown', 'DATA').reason).toBe('filtered');
  });

  it('reads a 2xx reply as delivered', () => {
    expect(classifyReply(250, '2.0.0', 'OK')).toEqual({
      category: 'none',
      reason: 'delivered',
      status: '2.0.0',
    });
  });

  it('falls back to the status code when no rule matches', () => {
    expect(classifyReply(552, '5.3.4', 'nope')).toMatchObject({ reason: 'mesgtoobig', category: 'soft' });
  });
});
