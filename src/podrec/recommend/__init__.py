"""The list itself: diversity re-ranking and explanations of each recommended item."""
