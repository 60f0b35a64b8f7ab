"""Engagement analytics over the fold's Redis state: trends, tiers, content, communities,
initiatives and departments. Read side only, except the community flags' fenced commit."""
