-- Streaming timings, computed by the engine from the attributes a sample keeps (both ingest
-- paths keep the span attributes they do not map to a column): time to first token in ms, from
-- the SDK's gen_ai.response.time_to_first_chunk or OpenLIT's gen_ai.server.time_to_first_token
-- (both seconds); output tokens per second after the first token, from the SDK's
-- watchkeeper.response.output_tokens_per_second, else 1 / OpenLIT's
-- gen_ai.server.time_per_output_token, else output_tokens over the time after the first token;
-- only where there is a time to first token.
-- NULL for calls the instrumentation says did not stream (OpenLIT times those too: the whole
-- response), and where it does not say.
ALTER TABLE {db}.samples {on_cluster}
    ADD COLUMN IF NOT EXISTS ttft_ms Nullable(Float64) MATERIALIZED if(
        'false' IN (attributes['gen_ai.request.stream'], attributes['gen_ai.is_streaming'],
                    attributes['llm.is_streaming']), NULL,
        1000 * coalesce(toFloat64OrNull(attributes['gen_ai.response.time_to_first_chunk']),
                        toFloat64OrNull(attributes['gen_ai.server.time_to_first_token'])))
        AFTER duration_ms,
    ADD COLUMN IF NOT EXISTS output_tokens_per_s Nullable(Float64) MATERIALIZED if(
        ttft_ms IS NULL, NULL, coalesce(
            toFloat64OrNull(attributes['watchkeeper.response.output_tokens_per_second']),
            1 / nullIf(toFloat64OrNull(attributes['gen_ai.server.time_per_output_token']), 0),
            if(output_tokens > 0 AND duration_ms > ttft_ms,
               output_tokens / ((duration_ms - ttft_ms) / 1000), NULL))) AFTER ttft_ms;
