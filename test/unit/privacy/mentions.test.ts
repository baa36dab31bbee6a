import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eraseAddress, mentionedAddresses, messagesNaming } from '../../../src/privacy/index.js';
import { openSpool } from '../../../src/spool/index.js';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const msg = (...lines: string[]): Buffer => Buffer.from(`${lines.join('\r\n')}\r\n`, 'utf8');

describe('mentioned addresses', () => {
  it('finds an address in a base64 part, a quoted-printable soft break, RFC 2047 words and any letter case', () => {
    const found = mentionedAddresses(
      msg(
        'From: a@example.com',
        `Cc: =?utf-8?b?${b64('Alice@Dest.Test')}?= <cc@else.test>, =?iso-8859-1?q?bob=40dest=2Etest?= <x@else.test>`,
        'Content-Type: multipart/mixed; boundary="b"',
        '',
        '--b',
        'Content-Type: text/html; charset=utf-8',
        'Content-Transfer-Encoding: base64',
        '',
        b64('<a href="mailto:CAROL@dest.test">c</a>'),
        '--b',
        'Content-Type: text/plain',
        'Content-Transfer-Encoding: quoted-printable',
        '',
        'write to da=',
        've@dest.test.',
        '--b',
        'Content-Type: message/rfc822',
        '',
        'Subject: inner',
        'Content-Transfer-Encoding: base64',
        '',
        b64('erin@dest.test'),
        '--b--',
      ),
    );
    for (const a of [
      'a@example.com',
      'alice@dest.test',
      'bob@dest.test',
      'carol@dest.test',
      'dave@dest.test',
      'erin@dest.test',
    ]) {
      expect(found).toContain(a);
    }
  });

  it('counts an address after punctuation or before a further label, never one cut inside a word', () => {
    const found = mentionedAddresses(
      msg('Subject: x', '', 'see http://h/x/alice@dest.test.example and xbob@dest.test'),
    );
    expect(found).toContain('alice@dest.test');
    expect(found).toContain('alice@dest.test.example');
    expect(found).not.toContain('bob@dest.test');
    expect(found).toContain('xbob@dest.test');
  });
});

describe('messages stored without their mentions', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('are found by decoding their bodies, and erased', async () => {
    dir = mkdtempSync(join(tmpdir(), 'petrel-mentions-'));
    const spool = openSpool(dir);
    const body = msg(
      'From: a@example.com',
      'Content-Transfer-Encoding: base64',
      '',
      b64('ask zed@dest.test'),
    );
    const base = {
      accountId: null,
      mailFrom: 'a@example.com',
      recipients: [{ address: 'r@else.test', domain: 'else.test' }],
      headerMessageId: null,
      listener: 'test',
    };
    // As every message stored before the mentions index existed: no mentions given.
    const legacy = spool.messages.newId();
    await spool.messages.insert(legacy, { ...base, body });
    const indexed = spool.messages.newId();
    await spool.messages.insert(indexed, { ...base, body, mentions: mentionedAddresses(body) });
    await spool.messages.insert(spool.messages.newId(), {
      ...base,
      body: msg('Subject: other', '', 'nobody'),
      mentions: [],
    });
    expect(await spool.privacy.candidates('zed@dest.test', null)).toEqual([indexed]);
    expect((await messagesNaming(spool, 'zed@dest.test', null)).sort()).toEqual([legacy, indexed].sort());
    const report = await eraseAddress(spool, 'ZED@dest.test', { accountId: null, waitMs: 1000 });
    expect(report.counts.messages).toBe(2);
    expect(await spool.messages.count()).toBe(1);
    expect(await messagesNaming(spool, 'zed@dest.test', null)).toEqual([]);
    await spool.close();
  });
});
