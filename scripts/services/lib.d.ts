// Types for lib.js, used by the integration tests' global setup.
export declare class ServiceError extends Error {}
