export { startPostgres, type PostgresServer, type StartPostgresOptions } from './postgres-server';
export { LeakReportExporter, type LeakedCallSite } from './leak-report-exporter';
