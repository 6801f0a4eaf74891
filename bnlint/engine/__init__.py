"""Files → source → parse → rules' static checks → findings (cache, pool, noqa)."""
