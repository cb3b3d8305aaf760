// Starts the work a debounced change will need as soon as the change is seen,
// so that the quiet period and the work overlap instead of adding up. One run
// at a time: a change seen during a run aborts it (the work may stop early,
// e.g. after reading a file that is still being written) and starts the
// next run when it ends. A run that started before the last change is never
// handed out.
export class ReadAhead<T> {
  private generation = 0;
  private running = false;
  private latest?: { generation: number; result: Promise<T>; settled: Promise<void>; abort: AbortController };

  constructor(private readonly work: (signal: AbortSignal) => Promise<T>) {}

  /** Something changed: whatever ran before is stale. */
  changed(): void {
    this.generation += 1;
    if (this.running) this.latest?.abort.abort();
    else this.start();
  }

  /** The result of a run that started after the last change (waiting for one if need be). */
  async result(): Promise<T> {
    for (;;) {
      const latest = this.latest;
      if (latest?.generation === this.generation) return latest.result;
      if (this.running && latest) await latest.settled;
      else this.start();
    }
  }

  private start(): void {
    const generation = this.generation;
    this.running = true;
    const abort = new AbortController();
    const result = this.work(abort.signal);
    const settled = result.then(noop, noop).then(() => {
      this.running = false;
      if (this.generation !== generation) this.start();
    });
    this.latest = { generation, result, settled, abort };
  }
}

function noop(): void {}
