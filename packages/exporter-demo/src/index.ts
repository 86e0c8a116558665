export { startPostgres, type PostgresServer, type StartPostgresOptions } from './postgres-server';
export {
  LeakReportExporter,
  type CallPathRow,
  type Caller,
  type ForeignUses,
  type LeakedCallSite,
  type LeakReportData,
  type MisplacedCheckins,
} from './leak-report-exporter';
export type { PoolReport, PoolVerdict } from './pool-tally';
export { OtlpJsonFileExporter } from './otlp-json-file-exporter';
export { toOtlpTraceRequest, type OtlpTraceRequest } from './otlp-json';
