// The page: one self-contained HTML document (inline CSS, SVG and a few lines of script; a
// Content-Security-Policy that allows nothing from the network). The first screen is one card per
// pool with its verdict and top call path; below, each pool's chart and legend.
import { CALL_PATH_SEPARATOR, CallerNamer } from '../call-path';
import { callPathColors } from './colors';
import { esc } from './html';
import { formatMs, type PoolTimeline, type Timeline } from './pool-timeline';
import { renderPoolSvg, type ChartContext } from './render-svg';
import type { PoolSummary } from './verdict';

export interface PageInput {
  /** Shown as the page's source (a file name, not read again). */
  readonly source: string;
  readonly timeline: Timeline;
  readonly summaries: readonly PoolSummary[];
}

export function renderPage({ source, timeline, summaries }: PageInput): string {
  const colors = callPathColors(timeline);
  const namer = new CallerNamer([...colors.keys()].map((callPath) => callPath.split(CALL_PATH_SEPARATOR)));
  const context: ChartContext = { startMs: timeline.startMs, endMs: timeline.endMs, colors, namer };
  const seconds = ((timeline.endMs - timeline.startMs) / 1000).toFixed(1);
  const started = timeline.startMs > 0 ? new Date(timeline.startMs).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') : 'unknown time';
  const body =
    summaries.length === 0
      ? '<p class="empty">No pool checkout spans in this file (is it a trace file of an application instrumented with pool-leak?).</p>'
      : `<section id="verdicts">${summaries.map((summary) => card(summary)).join('')}</section>` +
        summaries.map((summary) => poolSection(summary.pool, context)).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(`Pool timeline — ${source}`)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>Connection pools over time</h1>
<p class="source">${esc(source)} · ${esc(timeline.spans)} spans · ${esc(seconds)} s from ${esc(started)}</p></header>
${body}
<div id="tip" hidden></div>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

function card({ pool, verdict, top, leaked }: PoolSummary): string {
  const facts = [
    `${pool.leases.length} leases`,
    `${leaked} leaked`,
    `${pool.failed.length} never got a connection`,
    `${pool.laneCount} connection lane${pool.laneCount === 1 ? '' : 's'}${pool.max === undefined ? '' : ` (pool max ${pool.max})`}`,
  ];
  const topText =
    top === undefined
      ? '<p class="top">No lease got a connection.</p>'
      : `<p class="top">Top call path: <b class="top-caller">${esc(top.caller.functionName)}</b>${top.caller.location === undefined ? '' : ` <span class="where">${esc(top.caller.location)}</span>`} — ` +
        `${esc(top.leaked > 0 ? `${top.leaked} of its ${top.leases} leases leaked` : `held connections ${formatMs(top.heldMs)} in ${top.leases} leases`)}</p>` +
        `<p class="path">${esc(top.callPath)}</p>`;
  return (
    `<article class="pool-card cause-${esc(verdict.cause)}" data-pool="${esc(pool.name)}" data-cause="${esc(verdict.cause)}">` +
    `<h2>${esc(pool.name)}</h2><p class="verdict">${esc(verdict.headline)}</p>${topText}` +
    `<p class="facts">${esc(facts.join(' · '))}</p><p class="basis">verdict from ${esc(verdict.source)}</p></article>`
  );
}

function poolSection(pool: PoolTimeline, context: ChartContext): string {
  const counts = new Map<string, number>();
  for (const lease of [...pool.leases, ...pool.failed]) counts.set(lease.callPath, (counts.get(lease.callPath) ?? 0) + 1);
  const legend = [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([callPath, count]) => {
      const caller = context.namer.callerOf(callPath.split(CALL_PATH_SEPARATOR)).functionName;
      return (
        `<li data-call-path="${esc(callPath)}" title="${esc(callPath)}"><span class="swatch" style="background:${esc(context.colors.get(callPath) ?? '#999')}"></span>` +
        `${esc(caller)} <span class="count">${esc(count)}</span></li>`
      );
    })
    .join('');
  const kinds = (kind: string) => pool.markers.filter((marker) => marker.kind === kind).length;
  return (
    `<section class="pool" data-pool="${esc(pool.name)}"><h2>${esc(pool.name)}${pool.library === undefined ? '' : ` <small>${esc(pool.library)}</small>`}</h2>` +
    `<ul class="legend">${legend}</ul>` +
    `<p class="marker-key"><span class="k-leak">▼</span> leak ${esc(pool.markers.filter((marker) => marker.kind === 'leak' && !marker.slowQuery).length)} · ` +
    `<span class="k-leak">▽</span> slow query past the threshold ${esc(pool.markers.filter((marker) => marker.slowQuery).length)} · <span class="k-stall">◆</span> stalled waiter ${esc(kinds('stall'))} · ` +
    `<span class="k-exhausted">▮</span> exhausted ${esc(kinds('exhausted'))} · lanes: ${esc(pool.laneCount)} (most held at once: ${esc(pool.maxConcurrency)}) · ` +
    `waiting: <span class="k-wait">▬</span> until granted, <span class="k-failed">▬</span> never got a connection · dashed red: still held at shutdown</p>` +
    `<div class="scroll">${renderPoolSvg(pool, context)}</div></section>`
  );
}

const STYLE = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px 22px;color:#1d2330;background:#f6f7f9}
h1{font-size:20px;margin:0 0 2px}h2{font-size:15px;margin:0 0 6px}small{color:#667;font-weight:normal}
.source{color:#556;margin:0 0 14px}
#verdicts{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:12px;margin-bottom:18px}
.pool-card{background:#fff;border:1px solid #d8dce3;border-left:6px solid #8a94a6;border-radius:6px;padding:10px 14px}
.pool-card.cause-leaked_connections{border-left-color:#d62728}.pool-card.cause-slow_queries{border-left-color:#f28e2b}
.pool-card.cause-undersized_pool{border-left-color:#edc948}.pool-card.cause-mixed{border-left-color:#b07aa1}.pool-card.cause-ok{border-left-color:#59a14f}
.verdict{font-size:17px;font-weight:700;margin:0 0 6px}.top{margin:0 0 2px}.where{color:#445;font-family:ui-monospace,monospace;font-size:12px}
.path{font-family:ui-monospace,monospace;font-size:11.5px;color:#445;margin:0 0 6px;word-break:break-word}
.facts{margin:0;color:#334}.basis{margin:2px 0 0;color:#778;font-size:12px}
.pool{background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:10px 14px;margin-bottom:14px}
.legend{list-style:none;margin:0 0 4px;padding:0;display:flex;flex-wrap:wrap;gap:4px 16px}
.legend li{white-space:nowrap}.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.count{color:#667}.marker-key{margin:0 0 4px;color:#445;font-size:12.5px}
.k-leak{color:#d62728}.k-wait{color:#b9c3d3}.k-failed{color:#555}.k-stall{color:#ff7f0e}.k-exhausted{color:#333}
.scroll{overflow-x:auto}
.chart .lane-bg{fill:#eef0f4}.chart .row-label{font-size:11px;fill:#556}.chart .tick{font-size:10.5px;fill:#556;text-anchor:middle}
.chart .axis{stroke:#99a}.chart .lease{stroke:#fff;stroke-width:.5}.chart .lease[data-outcome="open at shutdown"]{stroke:#d62728;stroke-width:1.5;stroke-dasharray:4 2}
.chart .wait{opacity:.45}.chart .wait-failed{opacity:.9;fill:#555}
.chart .m-leak{fill:#d62728;stroke:#fff;stroke-width:1}.chart .m-slow{fill:#fff;stroke:#d62728;stroke-width:1.5}.chart .m-stall{fill:#ff7f0e;stroke:#fff}.chart .m-exhausted{fill:#333;opacity:.55}
.chart .lease:hover,.chart .wait:hover,.chart .marker:hover{filter:brightness(1.25)}
#tip{position:fixed;pointer-events:none;max-width:640px;background:#1d2330;color:#fff;padding:6px 9px;border-radius:4px;font:12px/1.35 ui-monospace,monospace;white-space:pre-wrap;z-index:9}
.empty{font-size:16px}
`;

/** Shows an element's <title> at once, beside the pointer (the browser's own tooltip is slow). */
const SCRIPT = `
(function(){var tip=document.getElementById('tip');
document.addEventListener('mouseover',function(e){var el=e.target.closest&&e.target.closest('.lease,.wait,.marker');
if(!el){tip.hidden=true;return;}var t=el.querySelector('title');if(!t){return;}tip.textContent=t.textContent;tip.hidden=false;});
document.addEventListener('mousemove',function(e){if(tip.hidden)return;var x=e.clientX+14,y=e.clientY+14;
if(x+tip.offsetWidth>innerWidth)x=e.clientX-tip.offsetWidth-10;if(y+tip.offsetHeight>innerHeight)y=e.clientY-tip.offsetHeight-10;
tip.style.left=x+'px';tip.style.top=y+'px';});})();
`;
