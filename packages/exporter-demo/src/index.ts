export { startPostgres, type PostgresServer, type StartPostgresOptions } from './postgres-server';
export { LeakReportExporter, type LeakedCallSite, type LeakReportData, type MisplacedCheckins } from './leak-report-exporter';
export { OtlpJsonFileExporter } from './otlp-json-file-exporter';
export { toOtlpTraceRequest, type OtlpTraceRequest } from './otlp-json';
