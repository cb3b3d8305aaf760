// Config-change debouncing: fires after a quiet period, and no later than the
// maximum even while changes keep coming.
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { debounce } from '../../xds-server/debounce.ts';

describe('debounce', () => {
  it('waits for a quiet period', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      let fired = 0;
      const d = debounce(() => fired++, { quietMs: 100, maxMs: 10_000 });
      d.trigger();
      mock.timers.tick(60);
      d.trigger();
      mock.timers.tick(60);
      assert.equal(fired, 0, 'still changing');
      mock.timers.tick(50);
      assert.equal(fired, 1);
      mock.timers.tick(20_000);
      assert.equal(fired, 1, 'the max timer was cleared');
    } finally {
      mock.timers.reset();
    }
  });

  it('fires at the maximum while changes keep coming', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      let fired = 0;
      const d = debounce(() => fired++, { quietMs: 100, maxMs: 1000 });
      for (let t = 0; t < 1500; t += 50) {
        d.trigger();
        mock.timers.tick(50);
      }
      assert.equal(fired, 1, 'once at 1 s despite no quiet period');
      mock.timers.tick(200);
      assert.equal(fired, 2, 'and again after the changes stop');
    } finally {
      mock.timers.reset();
    }
  });
});
