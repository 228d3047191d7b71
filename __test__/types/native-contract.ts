// index.d.ts against the generated native.d.ts, type by type: each options
// interface users see must have exactly the fields, optionality and types
// the addon declares it reads (native.d.ts is generated from the Rust
// binding, src/binding/types.rs). Fields the JS layer reads itself are left
// out on the index.d.ts side. Compiled by `tsc --noEmit` in the test suite:
// a field added, dropped or retyped on one side only fails the build.
import type * as I from '../../index.js';
import type * as N from '../../native.js';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** The same keys, each with the same optionality and type. */
type Matches<A, B> =
  Same<keyof A, keyof B> extends true
    ? { [K in keyof A & keyof B]-?: Same<Pick<A, K>, Pick<B, K>> }[keyof A & keyof B] extends true
      ? true
      : false
    : false;

/** What the JS layer hands the addon for a `since` (a Date becomes epoch ms). */
type NativeSince<T> = { [K in keyof T]: K extends 'since' ? Exclude<T[K], Date> : T[K] };

export const runnerOptions: Matches<I.RunnerOptions, N.RunnerOptions> = true;
export const runRequest: Matches<Omit<I.RunRequest, 'onLog' | 'signal' | 'input'>, N.NativeRunRequest> = true;
export const stopOptions: Matches<I.StopOptions, N.StopOptions> = true;
export const logsOptions: Matches<NativeSince<I.LogsOptions>, N.NativeLogsOptions> = true;
export const attachOptions: Matches<NativeSince<Omit<I.AttachOptions, 'onLog'>>, N.NativeLogsOptions> = true;
export const createNetworkOptions: Matches<I.CreateNetworkOptions, N.CreateNetworkOptions> = true;
export const cleanupNetworkOptions: Matches<I.CleanupNetworkOptions, N.CleanupNetworkOptions> = true;
export const extractSpec: Matches<I.ExtractSpec, N.ExtractSpec> = true;

// The checker itself fails on a difference (a wrong type, a missing or
// optional-vs-required field):
export const differs1: Matches<{ a?: string }, { a?: number }> = false;
export const differs2: Matches<{ a?: string }, { a?: string; b?: string }> = false;
export const differs3: Matches<{ a: string }, { a?: string }> = false;
