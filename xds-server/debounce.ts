// Config changes come in bursts (an editor's write + rename, a script editing
// several files). Wait for a quiet period, but never longer than a maximum,
// so a file that keeps changing still gets applied.
export interface DebounceOptions {
  quietMs: number;
  maxMs: number;
}

export const DEFAULT_DEBOUNCE: DebounceOptions = { quietMs: 100, maxMs: 10_000 };

export function debounce(fn: () => void, { quietMs, maxMs }: DebounceOptions): { trigger(): void; cancel(): void } {
  let quiet: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;
  const fire = () => {
    clearTimeout(quiet);
    clearTimeout(deadline);
    quiet = deadline = undefined;
    fn();
  };
  return {
    trigger() {
      clearTimeout(quiet);
      quiet = setTimeout(fire, quietMs);
      deadline ??= setTimeout(fire, maxMs);
    },
    cancel() {
      clearTimeout(quiet);
      clearTimeout(deadline);
      quiet = deadline = undefined;
    },
  };
}
