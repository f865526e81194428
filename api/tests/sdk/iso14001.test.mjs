// The Parse JS SDK against the iso14001 app: Numbers (increment, comparisons), Booleans,
// Pointers to a non-user class, each(), destroyAll, Parse.Query.or, fetch and the
// current user's own profile.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, init, RUN, PASSWORD, rejectsWithCode, pluck } from './helpers.mjs';

const E = Parse.Error;
const s = {};
const scoped = () => new Parse.Query('AspectImpactLog').startsWith('aspect', `${RUN} `);

before(async () => {
  init('iso14001');
  s.manager = await Parse.User.logIn('manager', PASSWORD);
  // A site from the demo data, to point at.
  s.site = await new Parse.Query('AuditSite').ascending('siteCode').first();
  assert.ok(s.site, 'the demo data has AuditSites');
});

after(async () => {
  if (Parse.User.current()) await Parse.User.logOut();
});

test('create AspectImpactLogs with a Number and a Pointer to AuditSite', async () => {
  const mk = (aspect, rating, status) =>
    new Parse.Object('AspectImpactLog', {
      aspect: `${RUN} ${aspect}`,
      impact: 'Air emissions',
      riskRating: rating,
      actionStatus: status,
      site: s.site,
    });
  s.logs = await Parse.Object.saveAll([
    mk('boiler', 3, 'Open'),
    mk('forklift', 1, 'Monitoring'),
    mk('solvent store', 4, 'Open'),
    mk('paint line', 2.5, 'Closed'),
  ]);
  const back = await scoped().ascending('riskRating').include('site').find();
  assert.deepEqual(pluck(back, 'riskRating'), [1, 2.5, 3, 4]);
  assert.equal(back[0].get('site').id, s.site.id);
  assert.equal(back[0].get('site').className, 'AuditSite');
  assert.equal(back[0].get('site').get('siteCode'), s.site.get('siteCode'));
});

test('increment a Number field (and a negative increment)', async () => {
  const [boiler] = s.logs;
  boiler.increment('riskRating', 2);
  await boiler.save();
  assert.equal(boiler.get('riskRating'), 5, 'the server returns the new value');
  assert.equal((await new Parse.Query('AspectImpactLog').get(boiler.id)).get('riskRating'), 5);

  boiler.increment('riskRating', -1);
  boiler.set('actionStatus', 'Monitoring');
  await boiler.save();
  assert.equal(boiler.get('riskRating'), 4);
  const back = await new Parse.Query('AspectImpactLog').get(boiler.id);
  assert.equal(back.get('riskRating'), 4);
  assert.equal(back.get('actionStatus'), 'Monitoring');

  // increment() with no amount adds 1; decrement() subtracts.
  boiler.increment('riskRating');
  await boiler.save();
  assert.equal(boiler.get('riskRating'), 5);
  boiler.decrement('riskRating', 3);
  await boiler.save();
  assert.equal(boiler.get('riskRating'), 2);

  // Two clients incrementing the same stale object: neither increment is lost.
  const a = await new Parse.Query('AspectImpactLog').get(boiler.id);
  const b = await new Parse.Query('AspectImpactLog').get(boiler.id);
  a.increment('riskRating', 10);
  b.increment('riskRating', 100);
  await Promise.all([a.save(), b.save()]);
  assert.equal((await new Parse.Query('AspectImpactLog').get(boiler.id)).get('riskRating'), 112);
  boiler.set('riskRating', 2);
  await boiler.save();
});

test('Number comparisons, equalTo a Pointer, Parse.Query.or', async () => {
  const aspects = async (q) => pluck(await q.ascending('riskRating').find(), 'aspect').map((a) => a.slice(RUN.length + 1));
  assert.deepEqual(await aspects(scoped().greaterThan('riskRating', 2)), ['paint line', 'solvent store']);
  assert.deepEqual(await aspects(scoped().greaterThanOrEqualTo('riskRating', 2)), ['boiler', 'paint line', 'solvent store']);
  assert.deepEqual(await aspects(scoped().lessThan('riskRating', 2.5)), ['forklift', 'boiler']);
  assert.deepEqual(await aspects(scoped().lessThanOrEqualTo('riskRating', 2.5)), ['forklift', 'boiler', 'paint line']);
  assert.deepEqual(await aspects(scoped().equalTo('riskRating', 2.5)), ['paint line']);
  assert.deepEqual(await aspects(scoped().containedIn('riskRating', [1, 4])), ['forklift', 'solvent store']);
  assert.equal(await scoped().equalTo('site', s.site).count(), 4);
  const other = await new Parse.Query('AuditSite').notEqualTo('objectId', s.site.id).first();
  assert.equal(await scoped().equalTo('site', other).count(), 0);
  assert.equal(await scoped().containedIn('site', [other, s.site]).count(), 4);

  const open = scoped().equalTo('actionStatus', 'Open');
  const low = scoped().lessThan('riskRating', 2);
  assert.deepEqual(await aspects(Parse.Query.or(open, low)), ['forklift', 'solvent store']);
  assert.deepEqual(await aspects(Parse.Query.and(scoped(), scoped().notEqualTo('actionStatus', 'Open'))), [
    'forklift',
    'boiler',
    'paint line',
  ]);
});

test('each() pages through every match; fetch() re-reads one object', async () => {
  const seen = [];
  await scoped().each((o) => {
    seen.push(o.get('riskRating'));
  }, { batchSize: 2 });
  assert.deepEqual(seen.sort((x, y) => x - y), [1, 2, 2.5, 4]);

  const stale = new Parse.Object('AspectImpactLog');
  stale.id = s.logs[2].id;
  await stale.fetch();
  assert.equal(stale.get('aspect'), `${RUN} solvent store`);
  assert.equal(stale.get('riskRating'), 4);
  assert.equal(stale.get('site').id, s.site.id);
});

test('Number type errors: a String in a Number field, Increment of a String field', async () => {
  const bad = new Parse.Object('AspectImpactLog', {
    aspect: `${RUN} bad`,
    impact: 'x',
    riskRating: 'high',
    actionStatus: 'Open',
    site: s.site,
  });
  await rejectsWithCode(bad.save(), E.INCORRECT_TYPE, 'String in a Number field');
  // (The SDK refuses to increment a String it knows, so increment one it has not fetched.)
  const o = new Parse.Object('AspectImpactLog');
  o.id = s.logs[1].id;
  o.increment('impact', 1);
  await rejectsWithCode(o.save(), E.INCORRECT_TYPE, 'Increment of a String');
  assert.equal(await scoped().count(), 4);
});

test('destroyAll removes objects in one batch', async () => {
  await Parse.Object.destroyAll(s.logs.slice(2));
  assert.deepEqual(pluck(await scoped().ascending('riskRating').find(), 'riskRating'), [1, 2]);
});

test('the current user fetches and edits their own profile', async () => {
  const me = Parse.User.current();
  await me.fetch();
  assert.equal(me.get('username'), 'manager');
  assert.equal(me.get('email'), 'manager@iso14001.demo.invalid');
  me.set('email', `manager+${RUN}@iso14001.demo.invalid`);
  await me.save();
  const again = await Parse.User.become(me.getSessionToken());
  assert.equal(again.get('email'), `manager+${RUN}@iso14001.demo.invalid`);
  assert.equal(again.get('role'), 'manager');
  // A user cannot give themselves another role.
  again.set('role', 'admin');
  await rejectsWithCode(again.save(), E.OPERATION_FORBIDDEN, 'self-promotion');
  again.revert();
  again.set('email', 'manager@iso14001.demo.invalid');
  await again.save();
});
