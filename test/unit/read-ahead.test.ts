// Reading a changed config while the debounce waits: the result handed out is
// always from a run that started after the last change.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReadAhead } from '../../xds-server/read-ahead.ts';

/** Work whose runs finish when the test says so; each run resolves to its number. */
function controlledWork() {
  const runs: Array<() => void> = [];
  let started = 0;
  const work = () => {
    const run = ++started;
    return new Promise<number>((resolve) => runs.push(() => resolve(run)));
  };
  return { work, runs, started: () => started };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ReadAhead', () => {
  it('starts the work as soon as something changes', async () => {
    const w = controlledWork();
    const ahead = new ReadAhead(w.work);
    assert.equal(w.started(), 0);
    ahead.changed();
    assert.equal(w.started(), 1, 'started before anyone asked for the result');
    const result = ahead.result();
    w.runs[0]!();
    assert.equal(await result, 1);
    assert.equal(await ahead.result(), 1, 'no change since: the same run, not a new one');
    assert.equal(w.started(), 1);
  });

  it('runs once more after a burst of changes, and never hands out a stale run', async () => {
    const w = controlledWork();
    const ahead = new ReadAhead(w.work);
    ahead.changed();
    ahead.changed();
    ahead.changed();
    assert.equal(w.started(), 1, 'one run at a time');
    const result = ahead.result();
    w.runs[0]!();
    await tick();
    assert.equal(w.started(), 2, 'the changes seen during run 1 start run 2 when it ends');
    w.runs[1]!();
    assert.equal(await result, 2, 'run 1 began before the last change');
    assert.equal(w.started(), 2, 'three changes during one run cost one more run, not three');
  });

  it('a change during a run aborts it, so it can stop early', async () => {
    const signals: AbortSignal[] = [];
    const ahead = new ReadAhead(async (signal) => {
      signals.push(signal);
      await tick();
      signal.throwIfAborted();
      return signals.length;
    });
    ahead.changed();
    ahead.changed();
    assert.equal(signals[0]!.aborted, true);
    assert.equal(await ahead.result(), 2, 'the aborted run is not handed out; the next one is');
    assert.equal(signals[1]!.aborted, false);
  });

  it('a change seen during a run starts the next run when it ends, before anyone asks', async () => {
    const w = controlledWork();
    const ahead = new ReadAhead(w.work);
    ahead.changed();
    ahead.changed();
    w.runs[0]!();
    await tick();
    assert.equal(w.started(), 2);
    w.runs[1]!();
    assert.equal(await ahead.result(), 2);
  });

  it('a change after the result was asked for is left to the next ask (the debounce fires again for it)', async () => {
    const w = controlledWork();
    const ahead = new ReadAhead(w.work);
    ahead.changed();
    const first = ahead.result();
    ahead.changed();
    w.runs[0]!();
    assert.equal(await first, 1, 'run 1 had started after every change seen when asked');
    const second = ahead.result();
    await tick();
    w.runs[1]!();
    assert.equal(await second, 2);
  });

  it('with no change seen, asking for a result runs the work', async () => {
    const w = controlledWork();
    const ahead = new ReadAhead(w.work);
    const result = ahead.result();
    assert.equal(w.started(), 1);
    w.runs[0]!();
    assert.equal(await result, 1);
  });

  it('a failed run is handed out as a failure, and the next change runs again', async () => {
    let fail = true;
    const ahead = new ReadAhead(async () => {
      if (fail) throw new Error('boom');
      return 'fine';
    });
    ahead.changed();
    await assert.rejects(ahead.result(), /boom/);
    fail = false;
    ahead.changed();
    assert.equal(await ahead.result(), 'fine');
  });
});
