"""What LLM calls cost: the price table (prices.py) the engine prices every stored sample by,
and `watchkeeper reprice` (reprice.py) for the rows stored before a price changed."""
