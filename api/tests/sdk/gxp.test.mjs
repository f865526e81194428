// The Parse JS SDK against the gxp app, the way a seed-template client drives it: log in,
// create (single and saveAll) with Dates and Pointers, query with every operator, update,
// increment-free edits with a reason for change, delete, permission refusals, sessions and
// log-out.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Parse, init, RUN, PASSWORD, rejectsWithCode, pluck, rest } from './helpers.mjs';

const APP = 'gxp';
const E = Parse.Error;
const d = (s) => new Date(s);

/** State shared by the tests of this file (they run in order). */
const s = {};

/** A ComplianceLog query scoped to the objects this run created. */
const scoped = () => new Parse.Query('ComplianceLog').startsWith('category', `${RUN}/`);

before(async () => {
  init(APP);
  // An auditor's token for the refusal tests (taken first: the manager stays current).
  const auditor = await Parse.User.logIn('auditor', PASSWORD);
  s.auditorToken = auditor.getSessionToken();
  const coordinator = await Parse.User.logIn('coordinator', PASSWORD);
  s.coordinatorToken = coordinator.getSessionToken();
  // Leave no current user without ending those two sessions: log a third one in and out.
  await Parse.User.logIn('field_staff', PASSWORD);
  await Parse.User.logOut();
});

test('a wrong password is refused with code 101 and no current user', async () => {
  await rejectsWithCode(Parse.User.logIn('manager', 'not-the-password'), E.OBJECT_NOT_FOUND, 'wrong password');
  await rejectsWithCode(Parse.User.logIn('nobody-by-that-name', PASSWORD), E.OBJECT_NOT_FOUND, 'unknown user');
  assert.equal(Parse.User.current(), null);
});

test('a request without a session is refused with code 209', async () => {
  await rejectsWithCode(new Parse.Query('ComplianceLog').first(), E.INVALID_SESSION_TOKEN, 'no session');
});

test('logIn as manager; current() and currentAsync() are that user', async () => {
  const user = await Parse.User.logIn('manager', PASSWORD);
  s.manager = user;
  s.token = user.getSessionToken();
  assert.match(s.token, /^r:/, 'a revocable session token');
  assert.equal(user.get('username'), 'manager');
  assert.equal(user.get('role'), 'manager');
  assert.equal(user.get('password'), undefined);
  assert.match(user.id, /^[A-Za-z0-9]{10}$/);
  assert.ok(user.createdAt instanceof Date && !Number.isNaN(user.createdAt.getTime()));

  const current = Parse.User.current();
  assert.ok(current, 'current() after logIn');
  assert.equal(current.id, user.id);
  assert.equal(current.getSessionToken(), s.token);
  assert.equal(current.get('username'), 'manager');
  const currentAsync = await Parse.User.currentAsync();
  assert.equal(currentAsync.id, user.id);
  assert.equal(await current.isCurrentAsync(), true);
});

test('Parse.User.become(token) gives back the same user', async () => {
  const user = await Parse.User.become(s.token);
  assert.equal(user.id, s.manager.id);
  assert.equal(user.get('username'), 'manager');
  assert.equal(user.get('email'), 'manager@gxp.demo.invalid');
  assert.equal(user.getSessionToken(), s.token);
  assert.equal(Parse.User.current().id, s.manager.id);
  const session = await Parse.Session.current();
  assert.equal(session.getSessionToken(), s.token);
  // fetch() of the current user (GET classes/_User/id) keeps its session.
  await Parse.User.current().fetch();
  assert.equal(Parse.User.current().getSessionToken(), s.token);
  assert.equal(Parse.User.current().get('role'), 'manager');
  const me = await Parse.User.me(s.token);
  assert.equal(me.id, s.manager.id);
});

test('save one ComplianceLog with a Date and a Pointer to the current user', async () => {
  const log = new Parse.Object('ComplianceLog');
  log.set({
    title: 'Alpha review (v1.0)',
    category: `${RUN}/deviation`,
    owner: Parse.User.current(),
    reviewStatus: 'open',
    dueDate: d('2027-01-10T09:00:00.000Z'),
    notes: 'first',
  });
  const before = Date.now();
  const saved = await log.save();
  assert.equal(saved, log);
  assert.match(log.id, /^[A-Za-z0-9]{10}$/);
  assert.ok(log.createdAt instanceof Date);
  assert.ok(Math.abs(log.createdAt.getTime() - before) < 60_000, `createdAt ${log.createdAt.toISOString()}`);
  assert.equal(log.updatedAt.getTime(), log.createdAt.getTime());
  assert.equal(log.dirty(), false);
  assert.equal(log.existed(), false);
  s.alpha = log;
});

test('Parse.Object.saveAll creates several objects in one batch', async () => {
  const owner = Parse.User.current();
  const mk = (title, cat, status, due, notes) => {
    const o = new Parse.Object('ComplianceLog');
    o.set({ title, category: `${RUN}/${cat}`, owner, reviewStatus: status });
    if (due) o.set('dueDate', d(due));
    if (notes) o.set('notes', notes);
    return o;
  };
  const objs = [
    mk('Bravo audit', 'capa', 'open', '2027-02-10T09:00:00.000Z', 'second'),
    mk('Charlie check', 'deviation', 'closed', '2027-03-10T09:00:00.000Z'),
    mk('Delta audit', 'capa', 'in_review', '2027-04-10T09:00:00.000Z', 'fourth'),
    mk('echo.lower', 'training', 'closed'),
  ];
  const saved = await Parse.Object.saveAll(objs);
  assert.equal(saved.length, 4);
  for (const o of saved) {
    assert.match(o.id, /^[A-Za-z0-9]{10}$/);
    assert.ok(o.createdAt instanceof Date);
    assert.equal(o.dirty(), false);
  }
  assert.equal(new Set(saved.map((o) => o.id)).size, 4);
  [s.bravo, s.charlie, s.delta, s.echo] = saved;
  assert.equal(await scoped().count(), 5);
});

test('save a ValidationLog with executedAt and approvedBy; read it back exactly', async () => {
  const v = new Parse.Object('ValidationLog');
  const executedAt = d('2026-11-02T11:15:30.250Z');
  await v.save({
    protocolId: `${RUN}-IQ-1.2`,
    testedSystem: 'LIMS (v2.1)',
    result: 'pass',
    executedAt,
    approvedBy: Parse.User.current(),
    evidenceUrl: 'https://example.invalid/evidence/iq-1.2.pdf',
  });
  s.validation = v;
  const back = await new Parse.Query('ValidationLog').get(v.id);
  assert.equal(back.id, v.id);
  assert.equal(back.className, 'ValidationLog');
  assert.equal(back.get('protocolId'), `${RUN}-IQ-1.2`);
  assert.equal(back.get('testedSystem'), 'LIMS (v2.1)');
  assert.equal(back.get('result'), 'pass');
  assert.ok(back.get('executedAt') instanceof Date);
  assert.equal(back.get('executedAt').toISOString(), executedAt.toISOString());
  const approver = back.get('approvedBy');
  assert.ok(approver instanceof Parse.User, 'approvedBy decodes to a Parse.User pointer');
  assert.equal(approver.id, s.manager.id);
  assert.equal(back.get('evidenceUrl'), 'https://example.invalid/evidence/iq-1.2.pdf');
  assert.equal(back.createdAt.getTime(), v.createdAt.getTime());

  // fetch() (GET classes/ValidationLog/id) and fetchWithInclude.
  const fetched = await new Parse.Object('ValidationLog', { objectId: v.id }).fetchWithInclude('approvedBy');
  assert.equal(fetched.get('protocolId'), `${RUN}-IQ-1.2`);
  assert.equal(fetched.get('approvedBy').get('username'), 'manager');
});

test('equalTo / notEqualTo', async () => {
  assert.deepEqual(pluck(await scoped().equalTo('reviewStatus', 'closed').ascending('title').find(), 'title'), [
    'Charlie check',
    'echo.lower',
  ]);
  assert.deepEqual(pluck(await scoped().notEqualTo('reviewStatus', 'closed').ascending('title').find(), 'title'), [
    'Alpha review (v1.0)',
    'Bravo audit',
    'Delta audit',
  ]);
  // equalTo a Pointer (the current user) and on objectId.
  assert.equal(await scoped().equalTo('owner', Parse.User.current()).count(), 5);
  assert.deepEqual(pluck(await scoped().equalTo('objectId', s.delta.id).find(), 'title'), ['Delta audit']);
});

test('lessThan / lessThanOrEqualTo / greaterThan / greaterThanOrEqualTo on a Date', async () => {
  const march = d('2027-03-10T09:00:00.000Z');
  const feb = d('2027-02-10T09:00:00.000Z');
  const titles = async (q) => pluck(await q.ascending('dueDate').find(), 'title');
  assert.deepEqual(await titles(scoped().lessThan('dueDate', march)), ['Alpha review (v1.0)', 'Bravo audit']);
  assert.deepEqual(await titles(scoped().lessThanOrEqualTo('dueDate', march)), [
    'Alpha review (v1.0)',
    'Bravo audit',
    'Charlie check',
  ]);
  assert.deepEqual(await titles(scoped().greaterThan('dueDate', feb)), ['Charlie check', 'Delta audit']);
  assert.deepEqual(await titles(scoped().greaterThanOrEqualTo('dueDate', feb)), [
    'Bravo audit',
    'Charlie check',
    'Delta audit',
  ]);
  assert.deepEqual(await titles(scoped().equalTo('dueDate', feb)), ['Bravo audit']);
  assert.deepEqual(await titles(scoped().containedIn('dueDate', [feb, march])), ['Bravo audit', 'Charlie check']);
  // System dates compare as Dates too ("everything changed since…").
  const since = new Date(s.alpha.createdAt.getTime() - 1);
  assert.equal(await scoped().greaterThan('createdAt', since).count(), 5);
  assert.equal(await scoped().lessThan('createdAt', since).count(), 0);
  assert.equal(await scoped().greaterThanOrEqualTo('updatedAt', s.bravo.createdAt).count(), 4);
  // Both bounds on one key.
  assert.deepEqual(await titles(scoped().greaterThan('dueDate', feb).lessThan('dueDate', d('2027-04-01'))), [
    'Charlie check',
  ]);
  // A String comparison.
  assert.deepEqual(await titles(scoped().greaterThanOrEqualTo('title', 'Charlie').lessThan('title', 'E')), [
    'Charlie check',
    'Delta audit',
  ]);
});

test('containedIn / notContainedIn', async () => {
  assert.deepEqual(
    pluck(await scoped().containedIn('reviewStatus', ['open', 'in_review']).ascending('title').find(), 'title'),
    ['Alpha review (v1.0)', 'Bravo audit', 'Delta audit'],
  );
  assert.deepEqual(pluck(await scoped().notContainedIn('reviewStatus', ['open']).ascending('title').find(), 'title'), [
    'Charlie check',
    'Delta audit',
    'echo.lower',
  ]);
  assert.deepEqual(
    pluck(await scoped().containedIn('objectId', [s.alpha.id, s.echo.id]).ascending('title').find(), 'title'),
    ['Alpha review (v1.0)', 'echo.lower'],
  );
});

test('exists / doesNotExist', async () => {
  assert.deepEqual(pluck(await scoped().exists('notes').ascending('title').find(), 'notes'), [
    'first',
    'second',
    'fourth',
  ]);
  assert.deepEqual(pluck(await scoped().doesNotExist('notes').ascending('title').find(), 'title'), [
    'Charlie check',
    'echo.lower',
  ]);
  assert.deepEqual(pluck(await scoped().doesNotExist('dueDate').find(), 'title'), ['echo.lower']);
});

test('matches / startsWith / contains / endsWith (the SDK quotes with \\Q…\\E)', async () => {
  const titles = async (q) => pluck(await q.ascending('title').find(), 'title');
  assert.deepEqual(await titles(scoped().matches('title', /^[A-C]\w+ (audit|check)$/)), [
    'Bravo audit',
    'Charlie check',
  ]);
  assert.deepEqual(await titles(scoped().matches('title', /^ECHO\./i)), ['echo.lower']);
  assert.deepEqual(await titles(scoped().matches('title', 'AUDIT$', 'i')), ['Bravo audit', 'Delta audit']);
  // Regex metacharacters in the literal: "(", ".", ")" must match themselves.
  assert.deepEqual(await titles(scoped().startsWith('title', 'Alpha review (v1.')), ['Alpha review (v1.0)']);
  assert.deepEqual(await titles(scoped().startsWith('title', 'Alpha review (v1x')), []);
  assert.deepEqual(await titles(scoped().contains('title', ' audit')), ['Bravo audit', 'Delta audit']);
  assert.deepEqual(await titles(scoped().contains('title', 'o.l')), ['echo.lower']);
  assert.deepEqual(await titles(scoped().contains('title', 'oXl')), []);
  assert.deepEqual(await titles(scoped().endsWith('title', '.lower')), ['echo.lower']);
  assert.deepEqual(await titles(scoped().endsWith('title', '(v1.0)')), ['Alpha review (v1.0)']);
  // startsWith on the scope key itself: the run tag's own prefix.
  const v = await new Parse.Query('ValidationLog').startsWith('protocolId', `${RUN}-IQ-1.`).find();
  assert.deepEqual(pluck(v, 'protocolId'), [`${RUN}-IQ-1.2`]);
});

test('ascending / descending / addDescending / addAscending', async () => {
  assert.deepEqual(pluck(await scoped().descending('title').find(), 'title'), [
    'echo.lower',
    'Delta audit',
    'Charlie check',
    'Bravo audit',
    'Alpha review (v1.0)',
  ]);
  assert.deepEqual(pluck(await scoped().exists('dueDate').descending('dueDate').find(), 'title'), [
    'Delta audit',
    'Charlie check',
    'Bravo audit',
    'Alpha review (v1.0)',
  ]);
  assert.deepEqual(pluck(await scoped().ascending('reviewStatus').addDescending('title').find(), 'title'), [
    'echo.lower',
    'Charlie check',
    'Delta audit',
    'Bravo audit',
    'Alpha review (v1.0)',
  ]);
  assert.deepEqual(pluck(await scoped().descending('category').addAscending('title').find(), 'title'), [
    'echo.lower',
    'Alpha review (v1.0)',
    'Charlie check',
    'Bravo audit',
    'Delta audit',
  ]);
  // Ordering by createdAt: the single save came before the batch.
  const first = await scoped().ascending('createdAt').first();
  assert.equal(first.id, s.alpha.id);
});

test('limit / skip / count', async () => {
  assert.deepEqual(pluck(await scoped().ascending('title').skip(1).limit(2).find(), 'title'), [
    'Bravo audit',
    'Charlie check',
  ]);
  assert.deepEqual(pluck(await scoped().ascending('title').skip(4).limit(10).find(), 'title'), ['echo.lower']);
  assert.deepEqual(await scoped().ascending('title').skip(5).find(), []);
  assert.deepEqual(await scoped().limit(0).find(), []);
  assert.equal(await scoped().count(), 5);
  assert.equal(await scoped().equalTo('reviewStatus', 'closed').count(), 2);
  assert.equal(await scoped().equalTo('reviewStatus', 'nonexistent').count(), 0);
  // count ignores limit and skip, as in Parse.
  assert.equal(await scoped().limit(1).skip(2).count(), 5);
  // withCount: results and the total in one answer.
  const { results, count } = await scoped().ascending('title').limit(2).withCount().find();
  assert.equal(count, 5);
  assert.deepEqual(pluck(results, 'title'), ['Alpha review (v1.0)', 'Bravo audit']);
});

test('include of a Pointer fetches the pointed-to user', async () => {
  const plain = await scoped().equalTo('objectId', s.bravo.id).first();
  const ptr = plain.get('owner');
  assert.ok(ptr instanceof Parse.User);
  assert.equal(ptr.id, s.manager.id);
  assert.equal(ptr.get('username'), undefined, 'without include, only a pointer');

  const withOwner = await scoped().equalTo('objectId', s.bravo.id).include('owner').first();
  const owner = withOwner.get('owner');
  assert.ok(owner instanceof Parse.User);
  assert.equal(owner.id, s.manager.id);
  assert.equal(owner.get('username'), 'manager');
  assert.equal(owner.get('role'), 'manager');
  assert.equal(owner.get('password'), undefined, 'no password in an included user');
  assert.ok(owner.createdAt instanceof Date);
});

test('select (keys) returns only the chosen fields', async () => {
  const [o] = await scoped().equalTo('objectId', s.alpha.id).select('title', 'reviewStatus').find();
  assert.equal(o.id, s.alpha.id);
  assert.equal(o.get('title'), 'Alpha review (v1.0)');
  assert.equal(o.get('reviewStatus'), 'open');
  for (const k of ['category', 'owner', 'dueDate', 'notes']) {
    assert.equal(o.has(k), false, `${k} should not be selected`);
  }
  assert.ok(o.createdAt instanceof Date, 'createdAt is always returned');
  const keys = Object.keys(o.attributes).sort();
  assert.deepEqual(keys, ['createdAt', 'reviewStatus', 'title', 'updatedAt']);
});

test('exclude (excludeKeys) leaves fields out, also inside an included object', async () => {
  const o = await scoped().equalTo('objectId', s.alpha.id).exclude('notes', 'dueDate').first();
  assert.equal(o.id, s.alpha.id);
  assert.deepEqual(Object.keys(o.attributes).sort(), [
    'category',
    'createdAt',
    'owner',
    'reviewStatus',
    'title',
    'updatedAt',
  ]);
  const got = await new Parse.Query('ComplianceLog').include('owner').exclude('owner.email').get(s.alpha.id);
  assert.equal(got.get('notes'), 'first');
  assert.equal(got.get('owner').get('username'), 'manager');
  assert.equal(got.get('owner').has('email'), false);
});

test('query.get(id) and first()', async () => {
  const got = await new Parse.Query('ComplianceLog').get(s.alpha.id);
  assert.equal(got.id, s.alpha.id);
  assert.equal(got.get('title'), 'Alpha review (v1.0)');
  assert.equal(got.get('category'), `${RUN}/deviation`);
  assert.equal(got.get('reviewStatus'), 'open');
  assert.equal(got.get('notes'), 'first');
  assert.equal(got.get('dueDate').toISOString(), '2027-01-10T09:00:00.000Z');
  assert.equal(got.get('owner').id, s.manager.id);
  assert.equal(got.createdAt.toISOString(), s.alpha.createdAt.toISOString());

  const first = await scoped().ascending('title').first();
  assert.equal(first.id, s.alpha.id);
  assert.equal(await scoped().equalTo('title', 'no such title').first(), undefined);

  await rejectsWithCode(new Parse.Query('ComplianceLog').get('NoSuchId00'), E.OBJECT_NOT_FOUND, 'get of a missing id');
});

test('a gxp change needs a reason: refused without one, accepted with X-Audit-Reason', async () => {
  s.alpha.set('reviewStatus', 'in_review');
  await rejectsWithCode(s.alpha.save(), E.VALIDATION_ERROR, 'update without a reason');
  s.alpha.revert();
  // A client sends the reason as a header on its writes (or as a _Reason field).
  Parse.CoreManager.set('REQUEST_HEADERS', { 'X-Audit-Reason': 'SDK suite: periodic review' });
});

test('update with set and unset', async () => {
  const created = s.alpha.createdAt.getTime();
  s.alpha.set('reviewStatus', 'in_review');
  s.alpha.set('dueDate', d('2027-01-31T17:00:00.000Z'));
  s.alpha.unset('notes');
  await s.alpha.save();
  assert.equal(s.alpha.dirty(), false);
  assert.ok(s.alpha.updatedAt.getTime() >= created);
  assert.equal(s.alpha.get('notes'), undefined);

  const back = await new Parse.Query('ComplianceLog').get(s.alpha.id);
  assert.equal(back.get('reviewStatus'), 'in_review');
  assert.equal(back.get('dueDate').toISOString(), '2027-01-31T17:00:00.000Z');
  assert.equal(back.has('notes'), false);
  assert.equal(back.get('title'), 'Alpha review (v1.0)', 'untouched fields stay');
  assert.equal(back.createdAt.getTime(), created);
  assert.equal(back.updatedAt.toISOString(), s.alpha.updatedAt.toISOString());
  assert.deepEqual(pluck(await scoped().doesNotExist('notes').ascending('title').find(), 'title'), [
    'Alpha review (v1.0)',
    'Charlie check',
    'echo.lower',
  ]);

  // A saveAll of updates (PUTs in one batch).
  s.bravo.set('reviewStatus', 'closed');
  s.delta.set('notes', 'fourth, amended');
  await Parse.Object.saveAll([s.bravo, s.delta]);
  assert.deepEqual(pluck(await scoped().equalTo('reviewStatus', 'closed').ascending('title').find(), 'title'), [
    'Bravo audit',
    'Charlie check',
    'echo.lower',
  ]);
  assert.equal((await new Parse.Query('ComplianceLog').get(s.delta.id)).get('notes'), 'fourth, amended');
});

test('destroy (as manager); the object is gone', async () => {
  await s.echo.destroy();
  await rejectsWithCode(new Parse.Query('ComplianceLog').get(s.echo.id), E.OBJECT_NOT_FOUND, 'get after destroy');
  assert.equal(await scoped().count(), 4);
  assert.deepEqual(pluck(await scoped().endsWith('title', '.lower').find(), 'title'), []);
});

test('an unknown field is refused with code 105; nothing is created', async () => {
  const o = new Parse.Object('ComplianceLog');
  o.set({
    title: 'Foxtrot',
    category: `${RUN}/deviation`,
    owner: Parse.User.current(),
    reviewStatus: 'open',
    colour: 'red',
  });
  await rejectsWithCode(o.save(), E.INVALID_KEY_NAME, 'unknown field');
  assert.equal(o.id, undefined);
  // The same refusal inside a batch rejects saveAll.
  const ok = new Parse.Object('ComplianceLog');
  ok.set({ title: 'Golf', category: `${RUN}/other`, owner: Parse.User.current(), reviewStatus: 'open' });
  const bad = new Parse.Object('ComplianceLog');
  bad.set({ title: 'Hotel', category: `${RUN}/other`, owner: Parse.User.current(), reviewStatus: 'open', nope: 1 });
  await rejectsWithCode(Parse.Object.saveAll([ok, bad]), E.INVALID_KEY_NAME, 'unknown field in a batch');
  assert.equal(bad.id, undefined);
  // Parse batches are not transactions: the good one was saved.
  assert.match(ok.id, /^[A-Za-z0-9]{10}$/);
  await ok.destroy();
  assert.equal(await scoped().count(), 4);
});

test('a transactional saveAll is refused whole, with a clear error', async () => {
  // (The SDK sends `transaction: true` only for batches of more than one object.)
  const a = new Parse.Object('ComplianceLog');
  a.set({ title: 'Juliet', category: `${RUN}/tx`, owner: Parse.User.current(), reviewStatus: 'open' });
  const b = new Parse.Object('ComplianceLog');
  b.set({ title: 'Kilo', category: `${RUN}/tx`, owner: Parse.User.current(), reviewStatus: 'open' });
  // The SDK turns a refused batch into one error per object.
  await assert.rejects(Parse.Object.saveAll([a, b], { transaction: true }), (e) => {
    assert.match(String(e), /atomic batches are not supported/);
    return true;
  });
  assert.equal(a.id, undefined);
  assert.equal(b.id, undefined);
  assert.equal(await new Parse.Query('ComplianceLog').equalTo('category', `${RUN}/tx`).count(), 0);
});

test('a wrong type and a missing required field are refused', async () => {
  const wrongType = new Parse.Object('ComplianceLog');
  wrongType.set({
    title: 'India',
    category: `${RUN}/deviation`,
    owner: Parse.User.current(),
    reviewStatus: 'open',
    dueDate: 42,
  });
  await rejectsWithCode(wrongType.save(), E.INCORRECT_TYPE, 'a Number in a Date field');
  const missing = new Parse.Object('ComplianceLog');
  missing.set({ title: 'Juliet', category: `${RUN}/deviation`, reviewStatus: 'open' });
  await rejectsWithCode(missing.save(), E.VALIDATION_ERROR, 'a missing required field');
  assert.equal(await scoped().count(), 4);
});

test('forbidden operations are refused with code 119', async () => {
  // An auditor reads but writes nothing.
  const byAuditor = new Parse.Object('ComplianceLog');
  byAuditor.set({ title: 'Kilo', category: `${RUN}/deviation`, owner: s.manager, reviewStatus: 'open' });
  await rejectsWithCode(byAuditor.save(null, { sessionToken: s.auditorToken }), E.OPERATION_FORBIDDEN, 'auditor create');
  assert.equal(await scoped().count({ sessionToken: s.auditorToken }), 4, 'the auditor can count');
  const asAuditor = await new Parse.Query('ComplianceLog').get(s.bravo.id, { sessionToken: s.auditorToken });
  asAuditor.set('notes', 'auditor was here');
  await rejectsWithCode(asAuditor.save(null, { sessionToken: s.auditorToken }), E.OPERATION_FORBIDDEN, 'auditor update');
  await rejectsWithCode(asAuditor.destroy({ sessionToken: s.auditorToken }), E.OPERATION_FORBIDDEN, 'auditor delete');

  // Only manager / qa_reviewer may set ValidationLog.approvedBy.
  const v = await new Parse.Query('ValidationLog').get(s.validation.id, { sessionToken: s.coordinatorToken });
  v.set('result', 'fail');
  v.set('approvedBy', s.manager);
  await rejectsWithCode(v.save(null, { sessionToken: s.coordinatorToken }), E.OPERATION_FORBIDDEN, 'coordinator approves');
  const v2 = await new Parse.Query('ValidationLog').get(s.validation.id, { sessionToken: s.coordinatorToken });
  v2.set('result', 'fail');
  await v2.save(null, { sessionToken: s.coordinatorToken });
  assert.equal((await new Parse.Query('ValidationLog').get(s.validation.id)).get('result'), 'fail');

  // SystemAudit is append-only: the manager creates one, nobody updates or deletes it.
  const audit = new Parse.Object('SystemAudit');
  await audit.save({
    entityType: 'ComplianceLog',
    entityId: s.alpha.id,
    action: `${RUN}-reviewed`,
    actor: Parse.User.current(),
    occurredAt: d('2026-11-20T08:00:00.000Z'),
  });
  assert.match(audit.id, /^[A-Za-z0-9]{10}$/);
  audit.set('details', 'rewriting history');
  await rejectsWithCode(audit.save(), E.OPERATION_FORBIDDEN, 'SystemAudit update');
  await rejectsWithCode(audit.destroy(), E.OPERATION_FORBIDDEN, 'SystemAudit delete');
  const back = await new Parse.Query('SystemAudit').equalTo('action', `${RUN}-reviewed`).find();
  assert.equal(back.length, 1);
  assert.equal(back[0].has('details'), false);
  assert.equal(back[0].get('occurredAt').toISOString(), '2026-11-20T08:00:00.000Z');
});

test('logOut ends the session: the old token is refused with code 209', async () => {
  const oldToken = Parse.User.current().getSessionToken();
  assert.equal(oldToken, s.token);
  await Parse.User.logOut();
  assert.equal(Parse.User.current(), null);
  assert.equal(await Parse.User.currentAsync(), null);
  await rejectsWithCode(Parse.User.become(oldToken), E.INVALID_SESSION_TOKEN, 'become(old token)');
  await rejectsWithCode(
    new Parse.Query('ComplianceLog').first({ sessionToken: oldToken }),
    E.INVALID_SESSION_TOKEN,
    'query with the old token',
  );
  const r = await rest(APP, 'GET', 'users/me', { token: oldToken });
  assert.equal(r.status, 401);
  assert.equal(r.body.code, 209);
  // Other sessions live on; a fresh login works.
  assert.equal(await scoped().count({ sessionToken: s.auditorToken }), 4);
  const again = await Parse.User.logIn('manager', PASSWORD);
  assert.notEqual(again.getSessionToken(), oldToken);
  assert.equal(await scoped().count(), 4);
  await Parse.User.logOut();
});

test('signing up while another user is logged in is a sign-up: an account with no role', async () => {
  await Parse.User.logIn('coordinator', PASSWORD);
  const u = new Parse.User();
  u.set({ username: `${RUN}.newcomer`, password: 'long-enough-password', email: `${RUN}@example.org` });
  await u.signUp();
  assert.match(u.id, /^[A-Za-z0-9]{10}$/);
  assert.equal(Parse.User.current().id, u.id);
  assert.equal(u.get('role'), undefined);
  // No role yet: nothing but itself to read.
  await rejectsWithCode(new Parse.Query('ComplianceLog').first(), E.OPERATION_FORBIDDEN, 'read without a role');
  const me = await Parse.User.current().fetch();
  assert.equal(me.get('username'), `${RUN}.newcomer`);
  await Parse.User.logOut();
});
