// Shared set-up for the SDK tests: the official Parse JS SDK, unchanged, pointed at the
// server that scripts/sdk-test started (PARSE_SERVER_URL, e.g. http://127.0.0.1:PORT/parse).
// Every request the SDK makes is a POST with Content-Type text/plain and the real method in
// `_method`; nothing here changes that.
import assert from 'node:assert/strict';
import Parse from 'parse/node';

export { Parse };

export const SERVER_URL = process.env.PARSE_SERVER_URL;
export const PASSWORD = process.env.PARSE_DEMO_PASSWORD || 'audit-ledger-demo';

if (!SERVER_URL) {
  throw new Error('PARSE_SERVER_URL is not set: run these tests through scripts/sdk-test');
}

/** Points the SDK at one app (the Parse application id); no JS key, no master key. */
export function init(app) {
  Parse.initialize(app);
  Parse.serverURL = SERVER_URL;
  // Node keeps no current user unless asked (the SDK's own switch, as a CLI client would).
  Parse.User.enableUnsafeCurrentUser();
}

/** A tag unique to this run, so exact counts hold whatever else is in the data. */
export const RUN = `sdk${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

/** Asserts that `promise` rejects with a Parse.Error of `code`; returns the error. */
export async function rejectsWithCode(promise, code, what = '') {
  let caught;
  await assert.rejects(promise, (e) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof Parse.Error, `${what}: expected a Parse.Error, got ${caught}`);
  assert.equal(caught.code, code, `${what}: expected code ${code}, got ${caught.code} (${caught.message})`);
  return caught;
}

/** The values of `key` of each object, in order. */
export const pluck = (objects, key) => objects.map((o) => o.get(key));

/** A raw REST call outside the SDK (used only to observe what a given token can do). */
export async function rest(app, method, path, { token, body } = {}) {
  const headers = { 'X-Parse-Application-Id': app, 'Content-Type': 'application/json' };
  if (token) headers['X-Parse-Session-Token'] = token;
  const res = await fetch(`${SERVER_URL}/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}
