// Starts the work a debounced change will need as soon as the change is seen,
// so that the quiet period and the work overlap instead of adding up. One run
// at a time: a change seen during a run starts the next run when it ends.
export class ReadAhead<T> {
  private generation = 0;
  private running = false;
  private latest?: { generation: number; result: Promise<T>; settled: Promise<void> };

  constructor(private readonly work: () => Promise<T>) {}

  /** Something changed: whatever ran before is stale. */
  changed(): void {
    this.generation += 1;
    if (!this.running) this.start();
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
    const result = this.work();
    const settled = result.then(noop, noop).then(() => {
      this.running = false;
      if (this.generation !== generation) this.start();
    });
    this.latest = { generation, result, settled };
  }
}

function noop(): void {}
