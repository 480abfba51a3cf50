/** Where traces go: nowhere, an OTLP/HTTP collector, or the console. */
export const tracesExporters = ['none', 'otlp', 'console'] as const;
export type TracesExporter = (typeof tracesExporters)[number];
