-- Audit appends in one round trip (api/src/audit.rs).
--
-- The chain rule is unchanged: hash = sha256(prev_hash | event_type | payload | ts), with the
-- payload in the canonical JSON text the API computes (sorted keys, no spaces) and ts as
-- YYYY-MM-DDTHH:MM:SS.ffffffZ in UTC. The API still verifies chains in Rust
-- (audit::chain_hash); tests check that both agree.
--
-- Each statement of a VOLATILE plpgsql function takes a fresh snapshot, so the read of the
-- chain head after the lock sees the previous holder's committed append (a single SQL
-- statement would read with the snapshot taken before it waited for the lock).
CREATE FUNCTION audit_append(p_tenant text, p_events text[], p_payloads text[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_seq  bigint;
    v_prev text;
    v_hash text;
    v_ts   timestamptz := date_trunc('microseconds', clock_timestamp());
    v_tss  text;
BEGIN
    IF coalesce(cardinality(p_events), 0) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(p_events) <> cardinality(p_payloads) THEN
        RAISE EXCEPTION 'audit_append: % events but % payloads', cardinality(p_events), cardinality(p_payloads);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('pinak-audit'), hashtext(p_tenant));
    SELECT seq, hash INTO v_seq, v_prev FROM logs_audit WHERE tenant = p_tenant ORDER BY seq DESC LIMIT 1;
    v_seq := coalesce(v_seq, 0);
    v_prev := coalesce(v_prev, '');
    v_tss := to_char(v_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    FOR i IN 1 .. cardinality(p_events) LOOP
        v_hash := encode(sha256(convert_to(v_prev || '|' || p_events[i] || '|' || p_payloads[i] || '|' || v_tss, 'UTF8')), 'hex');
        v_seq := v_seq + 1;
        INSERT INTO logs_audit (tenant, seq, event_type, payload, prev_hash, hash, ts)
        VALUES (p_tenant, v_seq, p_events[i], p_payloads[i]::jsonb, v_prev, v_hash, v_ts);
        v_prev := v_hash;
    END LOOP;
END
$$;
