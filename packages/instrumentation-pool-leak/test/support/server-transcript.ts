// Transcripts of runs against a real server: when a reply arrives, next to the application's
// own steps, is up to the network and the machine's load, not to the pool.
import type { Transcript } from './transcript';

/**
 * Puts every settlement line (`label -> outcome`, `label = value`) after the step lines, each
 * group in its own order: the application's calls and what they return, then the order in which
 * its promises settled (one connection or client: the pool's own queue order). Two runs then
 * compare the same things, without the moment each reply happened to land between two steps.
 */
export function separateReplies(transcript: Transcript): void {
  const settled = (line: string) => / -> | = /.test(line);
  const ordered = [...transcript.lines.filter((line) => !settled(line)), ...transcript.lines.filter(settled)];
  transcript.lines.splice(0, transcript.lines.length, ...ordered);
}
