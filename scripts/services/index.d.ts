// Types for index.js, which the integration tests' global setup imports.
export declare const SERVICE_NAMES: string[]
export declare function up(names?: string[]): Promise<void>
export declare function down(names?: string[]): Promise<void>
export declare function status(names?: string[]): Promise<Array<{ name: string; pid: number | null; external: boolean; ready: boolean; where: string }>>
