// Runs bin/protoplane as a user would, and hands back its exit code and output
// instead of throwing on a non-zero exit (tests check refusals too).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './envoy.ts';

const exec = promisify(execFile);
export const CLI = path.join(REPO_ROOT, 'bin/protoplane');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function protoplane(...args: string[]): Promise<CliRun> {
  try {
    const { stdout, stderr } = await exec(CLI, args, { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as CliRun;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
